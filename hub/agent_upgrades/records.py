"""Agent upgrades as the hub records them, with every step they took."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime
from sqlmodel import Field, SQLModel

from appliance.clock import utcnow
from hub.columns import utc_column


class AgentUpgradeRecord(SQLModel, table=True):
    __tablename__ = "agent_upgrades"

    id: int | None = Field(default=None, primary_key=True)
    version: str = Field(max_length=64)
    zone: str = Field(max_length=64)
    group: str = Field(max_length=64)
    rings: list[float] = Field(sa_column=Column(JSON, nullable=False))
    """Cumulative shares of the group's agents, e.g. [0.05, 0.25, 1.0]."""
    ring: int = 0
    """Index of the ring running the release now."""
    state: str = Field(default="running", max_length=16, index=True)
    """running, completed, halted, aborted."""
    soak_s: float
    ring_started_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    failed: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    """Agents whose upgrade failed: ``{"agent_id", "name", "reason"}``."""
    installing: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """Agents whose host's upgrader is still judging the release (their heartbeats say
    ``upgrading``): not yet counted as upgraded, though the release already runs."""
    steps: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    created_by: str = Field(max_length=128)
    created_at: datetime = utc_column()
