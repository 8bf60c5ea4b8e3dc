"""Rollouts as the hub records them, with every step they took."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime
from sqlmodel import Field, SQLModel

from appliance.clock import utcnow


class RolloutRecord(SQLModel, table=True):
    __tablename__ = "rollouts"
    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(max_length=128, index=True)
    version: int
    previous: int | None = None
    """The production version agents fall back to when a ring is rolled back."""
    zone: str = Field(max_length=64)
    group: str = Field(max_length=64)
    strategy: str = Field(default="canary", max_length=16)
    """``canary`` (ring by ring), ``all-at-once`` or ``blue-green``."""
    rings: list[float] = Field(sa_column=Column(JSON, nullable=False))
    """Cumulative shares of the group's agents, e.g. [0.05, 0.25, 1.0]."""
    first_agents: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """Canary: agents (by name) that make a ring of their own before the shares."""
    ring: int = 0
    """Index of the ring being soaked."""
    state: str = Field(default="running", max_length=16, index=True)
    """running, paused, completed, rolled_back, aborted."""
    soak_s: float
    max_error_rate: float
    max_p95_ratio: float
    ring_started_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    steps: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    created_by: str = Field(max_length=128)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
