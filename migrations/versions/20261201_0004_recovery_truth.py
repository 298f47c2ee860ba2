"""recovery truth: incident run leases, retry times, status reasons, incident events, journal processes

Revision ID: 0004
Revises: 0007
Create Date: 2026-12-01 10:00:00.000000
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import orchestrator.db.types

revision: str = '0004'
down_revision: str | Sequence[str] | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('incident_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('incident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('from_status', sa.String(length=24), nullable=True),
    sa.Column('to_status', sa.String(length=24), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('resolution', sa.String(length=16), nullable=True),
    sa.Column('notified_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_incident_events_incident_id_incidents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incident_events'))
    )
    with op.batch_alter_table('incident_events', schema=None) as batch_op:
        batch_op.create_index('ix_incident_events_incident_id_id', ['incident_id', 'id'], unique=False)
        batch_op.create_index('ix_incident_events_notified_at', ['notified_at'], unique=False)

    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('run_owner', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('run_epoch', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('run_expires_at', orchestrator.db.types.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('next_attempt_at', orchestrator.db.types.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('last_error', sa.Text(), nullable=True))
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.alter_column('run_epoch', server_default=None)

    with op.batch_alter_table('recovery_journal', schema=None) as batch_op:
        batch_op.add_column(sa.Column('proc_host', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('proc_pid', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('proc_start_ticks', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('recovery_journal', schema=None) as batch_op:
        batch_op.drop_column('proc_start_ticks')
        batch_op.drop_column('proc_pid')
        batch_op.drop_column('proc_host')

    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_column('last_error')
        batch_op.drop_column('next_attempt_at')
        batch_op.drop_column('run_expires_at')
        batch_op.drop_column('run_epoch')
        batch_op.drop_column('run_owner')
        batch_op.drop_column('status_reason')

    with op.batch_alter_table('incident_events', schema=None) as batch_op:
        batch_op.drop_index('ix_incident_events_notified_at')
        batch_op.drop_index('ix_incident_events_incident_id_id')

    op.drop_table('incident_events')
