"""public status pages and human-written incident updates

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 19:40:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import orchestrator.db.types

revision: str = '0017'
down_revision: str | Sequence[str] | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'status_pages',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('name', sa.String(length=63), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('groups', sa.JSON(), nullable=False),
        sa.Column('created_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_status_pages')),
        sa.UniqueConstraint('name', name=op.f('uq_status_pages_name')),
    )
    op.create_table(
        'incident_updates',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('incident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('message', sa.Text(), nullable=False),
        sa.Column('public', sa.Boolean(), nullable=False),
        sa.Column('author', sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], ondelete='CASCADE',
                                name=op.f('fk_incident_updates_incident_id_incidents')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_incident_updates')),
    )
    op.create_index('ix_incident_updates_incident_id', 'incident_updates', ['incident_id'], unique=False)
    op.create_index('ix_incident_updates_public_at', 'incident_updates', ['public', 'at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_incident_updates_public_at', table_name='incident_updates')
    op.drop_index('ix_incident_updates_incident_id', table_name='incident_updates')
    op.drop_table('incident_updates')
    op.drop_table('status_pages')
