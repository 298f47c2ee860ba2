"""TLS certificate expiry on check results and components; maintenance windows and silences

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 19:45:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import orchestrator.db.types

revision: str = '0013'
down_revision: str | Sequence[str] | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('components', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tls_expires_at', orchestrator.db.types.UTCDateTime(timezone=True),
                                      nullable=True))
    with op.batch_alter_table('check_results', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tls_expires_at', orchestrator.db.types.UTCDateTime(timezone=True),
                                      nullable=True))
    op.create_table(
        'maintenance_windows',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('selector', sa.Text(), nullable=False),
        sa.Column('starts_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('ends_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column('cron', sa.String(length=128), nullable=True),
        sa.Column('duration_s', sa.Float(), nullable=True),
        sa.Column('tz', sa.String(length=64), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('created_at', orchestrator.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('created_by', sa.String(length=128), nullable=False),
        sa.CheckConstraint("kind IN ('maintenance', 'silence')", name=op.f('ck_maintenance_windows_kind_known')),
        sa.CheckConstraint("(cron IS NULL) = (starts_at IS NOT NULL)",
                           name=op.f('ck_maintenance_windows_one_off_or_recurring')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_maintenance_windows')),
    )


def downgrade() -> None:
    op.drop_table('maintenance_windows')
    with op.batch_alter_table('check_results', schema=None) as batch_op:
        batch_op.drop_column('tls_expires_at')
    with op.batch_alter_table('components', schema=None) as batch_op:
        batch_op.drop_column('tls_expires_at')
