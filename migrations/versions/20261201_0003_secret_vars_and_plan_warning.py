"""secret vars per component; the plan warning a daemon instance reports

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 23:50:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('components', schema=None) as batch_op:
        batch_op.add_column(sa.Column('secret_vars', sa.JSON(), server_default=sa.text("'{}'"), nullable=False))
    with op.batch_alter_table('daemon_instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('plan_warning', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('daemon_instances', schema=None) as batch_op:
        batch_op.drop_column('plan_warning')
    with op.batch_alter_table('components', schema=None) as batch_op:
        batch_op.drop_column('secret_vars')
