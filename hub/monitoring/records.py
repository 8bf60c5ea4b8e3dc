"""Tables for agent reports, drift statistics and drift alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, UniqueConstraint
from sqlmodel import Field, SQLModel

from appliance.clock import utcnow


def _utc(nullable: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    return Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class AgentReportRecord(SQLModel, table=True):
    """Every report an agent delivered, once per (agent, key): the idempotency ledger."""

    __tablename__ = "agent_reports"
    __table_args__ = (UniqueConstraint("agent_id", "key", name="uq_agent_report_key"),)
    id: int | None = Field(default=None, primary_key=True)
    agent_id: int = Field(index=True)
    key: str = Field(max_length=128)
    kind: str = Field(max_length=16, index=True)
    body: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    received_at: datetime = _utc()


class DriftReportRecord(SQLModel, table=True):
    __tablename__ = "drift_reports"
    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(foreign_key="agent_reports.id", index=True)
    agent_id: int = Field(index=True)
    model: str = Field(max_length=128, index=True)
    version: int
    drifted: bool
    min_p_value: float
    method: str = Field(max_length=16)
    window_size: int
    started_at: datetime = _utc()
    ended_at: datetime = _utc()
    p_values: list[float] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    distances: list[float] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    received_at: datetime = _utc()


class DriftAlertRecord(SQLModel, table=True):
    __tablename__ = "drift_alerts"
    id: int | None = Field(default=None, primary_key=True)
    agent_id: int = Field(index=True)
    model: str = Field(max_length=128)
    version: int
    windows: int
    """Drifted windows in a row when it opened."""
    opened_at: datetime = _utc()
    closed_at: datetime | None = _utc(nullable=True)
