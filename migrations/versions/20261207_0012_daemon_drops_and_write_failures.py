"""daemon instances: drop counters by cause and the start of a spell of failed writes (for `status`)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 17:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import orchestrator.db.types

revision: str = '0012'
down_revision: str | Sequence[str] | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('daemon_instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('drops', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('writes_failing_since', orchestrator.db.types.UTCDateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('daemon_instances', schema=None) as batch_op:
        batch_op.drop_column('writes_failing_since')
        batch_op.drop_column('drops')
