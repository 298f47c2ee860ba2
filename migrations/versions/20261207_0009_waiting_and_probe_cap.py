"""waiting reasons on incidents, and the per-component cap of the DOWN probe backoff

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 16:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import orchestrator.db.types

revision: str = '0009'
down_revision: str | Sequence[str] | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('waiting_for', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('waiting_until', orchestrator.db.types.UTCDateTime(timezone=True),
                                      nullable=True))
    with op.batch_alter_table('components', schema=None) as batch_op:
        batch_op.add_column(sa.Column('max_probe_interval_s', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('components', schema=None) as batch_op:
        batch_op.drop_column('max_probe_interval_s')
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_column('waiting_until')
        batch_op.drop_column('waiting_for')
