"""Agent upgrades: agent groups taken to an agent release ring by ring.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agent_upgrades",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("zone", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("group", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("rings", sa.JSON(), nullable=False),
        sa.Column("ring", sa.Integer(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("soak_s", sa.Float(), nullable=False),
        sa.Column("ring_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failed", sa.JSON(), nullable=False),
        sa.Column("installing", sa.JSON(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("agent_upgrades", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_upgrades_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("agent_upgrades", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_upgrades_state"))
    op.drop_table("agent_upgrades")
