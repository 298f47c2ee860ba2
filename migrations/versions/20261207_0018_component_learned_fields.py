"""components: what automation learned (replicas, vars) in columns of their own, beside what the operator declared

A scale-up or a rollback wrote the declared ``replicas`` / ``vars`` before, so re-applying the declarative
file undid it. Now recovery facts go to ``learned_replicas`` / ``learned_vars`` (one writer:
orchestrator.recovery.records.apply_facts) and override the declaration while set.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 19:50:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0018'
down_revision: str | Sequence[str] | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('components', schema=None) as batch_op:
        batch_op.add_column(sa.Column('learned_replicas', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('learned_vars', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))


def downgrade() -> None:
    with op.batch_alter_table('components', schema=None) as batch_op:
        batch_op.drop_column('learned_vars')
        batch_op.drop_column('learned_replicas')
