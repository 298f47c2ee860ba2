"""degradation_levels: until when a held level holds, and the orchestrator's own overload (self_protection)

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-07 17:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import orchestrator.db.types

revision: str = '0011'
down_revision: str | Sequence[str] | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('degradation_levels', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held_until', orchestrator.db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('self_protection', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('degradation_levels', schema=None) as batch_op:
        batch_op.drop_column('self_protection')
        batch_op.drop_column('held_until')
