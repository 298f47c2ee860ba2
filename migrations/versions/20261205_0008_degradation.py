"""degradation: early-warning overrides and reasons on components, degradation levels, overrides, events

Revision ID: 0008
Revises: 0004
Create Date: 2026-12-05 09:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import orchestrator.db.types

revision: str = '0008'
down_revision: str | Sequence[str] | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_LEVELS = "('normal', 'degraded', 'minimal', 'emergency')"


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, orchestrator.db.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table('components', schema=None) as batch_op:
        batch_op.add_column(sa.Column('early_warning', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('state_reason', sa.Text(), nullable=True))

    op.create_table('degradation_levels',
    sa.Column('scope', sa.String(length=255), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    _at('since'),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('features', sa.JSON(), nullable=False),
    sa.Column('ttl_s', sa.Float(), nullable=False),
    sa.Column('computed', sa.String(length=16), nullable=False),
    _at('evaluated_at'),
    sa.CheckConstraint(f'level IN {_LEVELS}', name=op.f('ck_degradation_levels_level_known')),
    sa.CheckConstraint(f'computed IN {_LEVELS}', name=op.f('ck_degradation_levels_computed_known')),
    sa.PrimaryKeyConstraint('scope', name=op.f('pk_degradation_levels'))
    )
    op.create_table('degradation_overrides',
    sa.Column('id', _BIG_ID, autoincrement=True, nullable=False),
    sa.Column('scope', sa.String(length=255), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    _at('created_at'),
    _at('expires_at'),
    _at('cleared_at', nullable=True),
    sa.Column('cleared_by', sa.String(length=128), nullable=True),
    sa.CheckConstraint(f'level IN {_LEVELS}', name=op.f('ck_degradation_overrides_level_known')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_degradation_overrides'))
    )
    with op.batch_alter_table('degradation_overrides', schema=None) as batch_op:
        batch_op.create_index('ix_degradation_overrides_scope_expires_at', ['scope', 'expires_at'], unique=False)
    op.create_table('degradation_events',
    sa.Column('id', _BIG_ID, autoincrement=True, nullable=False),
    _at('at'),
    sa.Column('scope', sa.String(length=255), nullable=False),
    sa.Column('from_level', sa.String(length=16), nullable=True),
    sa.Column('to_level', sa.String(length=16), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=True),
    _at('notified_at', nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_degradation_events'))
    )
    with op.batch_alter_table('degradation_events', schema=None) as batch_op:
        batch_op.create_index('ix_degradation_events_scope_at', ['scope', 'at'], unique=False)
        batch_op.create_index('ix_degradation_events_notified_at', ['notified_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('degradation_events', schema=None) as batch_op:
        batch_op.drop_index('ix_degradation_events_notified_at')
        batch_op.drop_index('ix_degradation_events_scope_at')
    op.drop_table('degradation_events')
    with op.batch_alter_table('degradation_overrides', schema=None) as batch_op:
        batch_op.drop_index('ix_degradation_overrides_scope_expires_at')
    op.drop_table('degradation_overrides')
    op.drop_table('degradation_levels')
    with op.batch_alter_table('components', schema=None) as batch_op:
        batch_op.drop_column('state_reason')
        batch_op.drop_column('early_warning')
