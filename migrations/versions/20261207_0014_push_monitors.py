"""push (heartbeat) monitors: their ping tokens and the pings received

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 19:45:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import orchestrator.db.types

revision: str = '0014'
down_revision: str | Sequence[str] | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        'push_monitors',
        sa.Column('component_id', sa.Integer(), nullable=False),
        sa.Column('token', sa.String(length=36), nullable=False),
        sa.Column('created_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['component_id'], ['components.id'], ondelete='CASCADE',
                                name=op.f('fk_push_monitors_component_id_components')),
        sa.PrimaryKeyConstraint('component_id', name=op.f('pk_push_monitors')),
        sa.UniqueConstraint('token', name=op.f('uq_push_monitors_token')),
    )
    op.create_table(
        'push_pings',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('component_id', sa.Integer(), nullable=False),
        sa.Column('received_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('exit_status', sa.Integer(), nullable=True),
        sa.Column('duration_s', sa.Float(), nullable=True),
        sa.Column('body', sa.Text(), nullable=True),
        sa.Column('judged', sa.Boolean(), nullable=False),
        sa.CheckConstraint("kind IN ('success', 'start', 'fail')", name=op.f('ck_push_pings_kind_known')),
        sa.ForeignKeyConstraint(['component_id'], ['components.id'], ondelete='CASCADE',
                                name=op.f('fk_push_pings_component_id_components')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_push_pings')),
    )
    op.create_index('ix_push_pings_component_id_id', 'push_pings', ['component_id', 'id'], unique=False)
    op.create_index('ix_push_pings_received_at', 'push_pings', ['received_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_push_pings_received_at', table_name='push_pings')
    op.drop_index('ix_push_pings_component_id_id', table_name='push_pings')
    op.drop_table('push_pings')
    op.drop_table('push_monitors')
