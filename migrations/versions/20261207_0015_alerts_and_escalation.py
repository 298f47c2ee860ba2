"""alerts as an incident source, and escalation state: incidents.source, reminder/tier columns, an alerts table

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 20:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import orchestrator.db.types

revision: str = '0015'
down_revision: str | Sequence[str] | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = orchestrator.db.types.UTCDateTime(timezone=True)
_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=16), nullable=False, server_default='check'))
        batch_op.add_column(sa.Column('next_reminder_at', _TIME, nullable=True))
        batch_op.add_column(sa.Column('reminders_sent', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('escalation_tier', sa.Integer(), nullable=False, server_default='0'))
        batch_op.create_index('ix_incidents_next_reminder_at', ['next_reminder_at'], unique=False)
    op.create_table(
        'alerts',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('fingerprint', sa.String(length=128), nullable=False),
        sa.Column('origin', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=True),
        sa.Column('component_name', sa.String(length=63), nullable=True),
        sa.Column('component_id', sa.Integer(), nullable=True),
        sa.Column('incident_id', _ID, nullable=True),
        sa.Column('labels', sa.JSON(), nullable=False),
        sa.Column('annotations', sa.JSON(), nullable=False),
        sa.Column('generator_url', sa.Text(), nullable=True),
        sa.Column('starts_at', _TIME, nullable=True),
        sa.Column('ends_at', _TIME, nullable=True),
        sa.Column('received_at', _TIME, nullable=False),
        sa.Column('updated_at', _TIME, nullable=False),
        sa.ForeignKeyConstraint(['component_id'], ['components.id'],
                                name=op.f('fk_alerts_component_id_components'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'],
                                name=op.f('fk_alerts_incident_id_incidents'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts')),
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index('ix_alerts_fingerprint_status', ['fingerprint', 'status'], unique=False)
        batch_op.create_index('ix_alerts_incident_id', ['incident_id'], unique=False)
        batch_op.create_index('ix_alerts_received_at', ['received_at'], unique=False)


def downgrade() -> None:
    op.drop_table('alerts')
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index('ix_incidents_next_reminder_at')
        batch_op.drop_column('escalation_tier')
        batch_op.drop_column('reminders_sent')
        batch_op.drop_column('next_reminder_at')
        batch_op.drop_column('source')
