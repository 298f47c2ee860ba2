"""registry: components, dependencies, audit log, daemon instances

Revision ID: 0001
Revises: 
Create Date: 2026-11-28 22:20:33.638689
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import orchestrator.db.types

revision: str = '0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('os_user', sa.String(length=128), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('command', sa.Text(), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('target', sa.String(length=128), nullable=True),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_target_at', ['target', 'at'], unique=False)

    op.create_table('components',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=63), nullable=False),
    sa.Column('check_kind', sa.String(length=16), nullable=False),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('check_spec', sa.JSON(), nullable=False),
    sa.Column('interval_s', sa.Float(), nullable=False),
    sa.Column('timeout_s', sa.Float(), nullable=False),
    sa.Column('failure_threshold', sa.Integer(), nullable=False),
    sa.Column('success_threshold', sa.Integer(), nullable=False),
    sa.Column('retry_interval_s', sa.Float(), nullable=True),
    sa.Column('plan', sa.String(length=63), nullable=True),
    sa.Column('criticality', sa.String(length=16), nullable=False),
    sa.Column('labels', sa.JSON(), nullable=False),
    sa.Column('vars', sa.JSON(), nullable=False),
    sa.Column('backup_url', sa.Text(), nullable=True),
    sa.Column('active_target', sa.String(length=16), nullable=False),
    sa.Column('replicas', sa.Integer(), nullable=True),
    sa.Column('min_replicas', sa.Integer(), nullable=True),
    sa.Column('max_replicas', sa.Integer(), nullable=True),
    sa.Column('paused_until', orchestrator.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('paused_reason', sa.Text(), nullable=True),
    sa.Column('maintenance_until', orchestrator.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('state_since', orchestrator.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_check_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_latency_ms', sa.Float(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('consecutive_successes', sa.Integer(), nullable=False),
    sa.Column('checks_total', sa.BigInteger(), nullable=False),
    sa.Column('failures_total', sa.BigInteger(), nullable=False),
    sa.Column('flap_episode', sa.Integer(), nullable=False),
    sa.Column('breaker', sa.JSON(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('created_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_epoch', sa.BigInteger(), nullable=False),
    sa.Column('lease_expires_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint('failure_threshold >= 1 AND success_threshold >= 1', name=op.f('ck_components_thresholds_positive')),
    sa.CheckConstraint('interval_s > 0', name=op.f('ck_components_interval_positive')),
    sa.CheckConstraint('timeout_s > 0 AND timeout_s < interval_s', name=op.f('ck_components_timeout_below_interval')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_components')),
    sa.UniqueConstraint('name', name=op.f('uq_components_name'))
    )
    with op.batch_alter_table('components', schema=None) as batch_op:
        batch_op.create_index('ix_components_lease_expires_at', ['lease_expires_at'], unique=False)
        batch_op.create_index('ix_components_state', ['state'], unique=False)

    op.create_table('daemon_instances',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('started_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('stopped_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('epoch', sa.BigInteger(), nullable=False),
    sa.Column('dropped_results', sa.BigInteger(), nullable=False),
    sa.Column('view_reliable', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_daemon_instances'))
    )
    op.create_table('component_dependencies',
    sa.Column('component_id', sa.Integer(), nullable=False),
    sa.Column('depends_on_id', sa.Integer(), nullable=False),
    sa.CheckConstraint('component_id <> depends_on_id', name=op.f('ck_component_dependencies_not_self')),
    sa.ForeignKeyConstraint(['component_id'], ['components.id'], name=op.f('fk_component_dependencies_component_id_components'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['depends_on_id'], ['components.id'], name=op.f('fk_component_dependencies_depends_on_id_components'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('component_id', 'depends_on_id', name=op.f('pk_component_dependencies'))
    )
    with op.batch_alter_table('component_dependencies', schema=None) as batch_op:
        batch_op.create_index('ix_component_dependencies_depends_on_id', ['depends_on_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('component_dependencies', schema=None) as batch_op:
        batch_op.drop_index('ix_component_dependencies_depends_on_id')

    op.drop_table('component_dependencies')
    op.drop_table('daemon_instances')
    with op.batch_alter_table('components', schema=None) as batch_op:
        batch_op.drop_index('ix_components_state')
        batch_op.drop_index('ix_components_lease_expires_at')

    op.drop_table('components')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_target_at')

    op.drop_table('audit_log')
