"""history and recovery: check results, transitions, rollups, incidents, journal, notifications

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 22:20:33.638689
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import orchestrator.db.types

revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('check_results',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('component_id', sa.Integer(), nullable=False),
    sa.Column('checked_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('reliable', sa.Boolean(), nullable=False),
    sa.Column('latency_ms', sa.Float(), nullable=False),
    sa.Column('lateness_ms', sa.Float(), nullable=True),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['component_id'], ['components.id'], name=op.f('fk_check_results_component_id_components'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_check_results'))
    )
    with op.batch_alter_table('check_results', schema=None) as batch_op:
        batch_op.create_index('ix_check_results_checked_at', ['checked_at'], unique=False)
        batch_op.create_index('ix_check_results_component_id_checked_at', ['component_id', 'checked_at'], unique=False)

    op.create_table('check_rollups',
    sa.Column('component_id', sa.Integer(), nullable=False),
    sa.Column('minute', orchestrator.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('checks', sa.Integer(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('latency_p50_ms', sa.Float(), nullable=True),
    sa.Column('latency_p95_ms', sa.Float(), nullable=True),
    sa.Column('latency_max_ms', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['component_id'], ['components.id'], name=op.f('fk_check_rollups_component_id_components'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('component_id', 'minute', name=op.f('pk_check_rollups'))
    )
    with op.batch_alter_table('check_rollups', schema=None) as batch_op:
        batch_op.create_index('ix_check_rollups_minute', ['minute'], unique=False)

    op.create_table('incidents',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('component_id', sa.Integer(), nullable=True),
    sa.Column('component_name', sa.String(length=63), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('resolution', sa.String(length=16), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('plan', sa.String(length=63), nullable=True),
    sa.Column('blocked_by', sa.String(length=63), nullable=True),
    sa.Column('opened_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('escalated_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('acked_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('acked_by', sa.String(length=128), nullable=True),
    sa.Column('approved_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('approved_by', sa.String(length=128), nullable=True),
    sa.Column('reopen_count', sa.Integer(), nullable=False),
    sa.Column('resolved_by_step', sa.Integer(), nullable=True),
    sa.Column('flap_episode', sa.Integer(), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['component_id'], ['components.id'], name=op.f('fk_incidents_component_id_components'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incidents'))
    )
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.create_index('ix_incidents_component_id_opened_at', ['component_id', 'opened_at'], unique=False)
        batch_op.create_index('ix_incidents_opened_at', ['opened_at'], unique=False)
        batch_op.create_index('ix_incidents_status', ['status'], unique=False)

    op.create_table('state_transitions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('component_id', sa.Integer(), nullable=False),
    sa.Column('at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('from_state', sa.String(length=16), nullable=False),
    sa.Column('to_state', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['component_id'], ['components.id'], name=op.f('fk_state_transitions_component_id_components'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_state_transitions'))
    )
    with op.batch_alter_table('state_transitions', schema=None) as batch_op:
        batch_op.create_index('ix_state_transitions_component_id_at', ['component_id', 'at'], unique=False)

    op.create_table('notifications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('incident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('channel', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('title', sa.Text(), nullable=True),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_notifications_incident_id_incidents'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications'))
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index('ix_notifications_created_at', ['created_at'], unique=False)
        batch_op.create_index('ix_notifications_incident_id', ['incident_id'], unique=False)

    op.create_table('recovery_journal',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('incident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('component_id', sa.Integer(), nullable=True),
    sa.Column('step_index', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('strategy', sa.String(length=63), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('executed', sa.Boolean(), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=True),
    sa.Column('owner_epoch', sa.BigInteger(), nullable=True),
    sa.Column('claimed_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('output', sa.Text(), nullable=True),
    sa.Column('facts', sa.JSON(), nullable=False),
    sa.Column('verification', sa.JSON(), nullable=False),
    sa.Column('skip_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['component_id'], ['components.id'], name=op.f('fk_recovery_journal_component_id_components'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_recovery_journal_incident_id_incidents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recovery_journal')),
    sa.UniqueConstraint('incident_id', 'step_index', 'attempt', name='uq_recovery_journal_attempt')
    )
    with op.batch_alter_table('recovery_journal', schema=None) as batch_op:
        batch_op.create_index('ix_recovery_journal_component_id_claimed_at', ['component_id', 'claimed_at'], unique=False)
        batch_op.create_index('ix_recovery_journal_status', ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('recovery_journal', schema=None) as batch_op:
        batch_op.drop_index('ix_recovery_journal_status')
        batch_op.drop_index('ix_recovery_journal_component_id_claimed_at')

    op.drop_table('recovery_journal')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_incident_id')
        batch_op.drop_index('ix_notifications_created_at')

    op.drop_table('notifications')
    with op.batch_alter_table('state_transitions', schema=None) as batch_op:
        batch_op.drop_index('ix_state_transitions_component_id_at')

    op.drop_table('state_transitions')
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index('ix_incidents_status')
        batch_op.drop_index('ix_incidents_opened_at')
        batch_op.drop_index('ix_incidents_component_id_opened_at')

    op.drop_table('incidents')
    with op.batch_alter_table('check_rollups', schema=None) as batch_op:
        batch_op.drop_index('ix_check_rollups_minute')

    op.drop_table('check_rollups')
    with op.batch_alter_table('check_results', schema=None) as batch_op:
        batch_op.drop_index('ix_check_results_component_id_checked_at')
        batch_op.drop_index('ix_check_results_checked_at')

    op.drop_table('check_results')
