"""The fleet's records: agents, the reports refused from them, enrolment tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime
from sqlmodel import Field, SQLModel

from hub.columns import utc_column


class AgentRecord(SQLModel, table=True):
    __tablename__ = "agents"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=128)
    zone: str = Field(index=True, max_length=64)
    runtime: str = Field(max_length=32)
    labels: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    url: str | None = None
    software_version: str | None = None
    registered_at: datetime = utc_column()
    last_seen_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    health: str = "unknown"
    detail: str | None = None
    group: str = Field(default="default", index=True, max_length=64)
    public_key: str | None = None
    encryption_key: str | None = None
    """X25519 public key (PEM) that model keys are wrapped to for this agent."""
    """PEM of the key the agent generated at enrolment; it signs the agent's tokens."""
    enrolled_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    models: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )


class ReportRefusalRecord(SQLModel, table=True):
    """Reports the hub refused from one agent in the current window (see
    :mod:`hub.fleet.standing`): the hub shows that agent ``degraded`` itself, whatever the
    agent says of its own health."""

    __tablename__ = "report_refusals"

    agent_id: int = Field(primary_key=True)
    count: int = 0
    """Refused in the window that began at ``first_at``."""
    first_at: datetime = utc_column()
    last_at: datetime = utc_column()
    last_reason: str = Field(default="", max_length=500)


class EnrolmentTokenRecord(SQLModel, table=True):
    __tablename__ = "enrolment_tokens"

    id: int | None = Field(default=None, primary_key=True)
    token_sha256: str = Field(unique=True, index=True, max_length=64)
    zone: str = Field(max_length=64)
    group: str = Field(max_length=64)
    created_by: str = Field(max_length=128)
    created_at: datetime = utc_column()
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    used_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    used_by_agent_id: int | None = None
