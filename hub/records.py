"""The hub's persistent records (SQLModel tables, SQLite or PostgreSQL)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, UniqueConstraint
from sqlmodel import Field, SQLModel

from appliance.clock import utcnow


def _utc_column() -> Any:
    return Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class ModelRecord(SQLModel, table=True):
    __tablename__ = "models"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=128)
    created_at: datetime = _utc_column()
    last_version: int = 0
    """Highest version number handed out; versions never repeat, even after a failed build."""


class ModelVersionRecord(SQLModel, table=True):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_version"),)

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", index=True)
    version: int
    stage: str = Field(default="candidate", index=True, max_length=16)
    created_at: datetime = _utc_column()
    stage_changed_at: datetime = _utc_column()
    bundle_sha256: str = Field(max_length=64)
    bundle_length: int
    manifest: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    """The ``signed`` part of the bundle's manifest, for display and queries."""
    created_by: str = Field(default="system", max_length=128)
    """Who uploaded it: the author, who may never approve it alone."""
    zones: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """Residency zones of the data it was trained on (it inherits them)."""


class ApprovalRecord(SQLModel, table=True):
    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("version_id", "approver", name="uq_approval"),)

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="model_versions.id", index=True)
    approver: str = Field(max_length=128)
    at: datetime = _utc_column()


class ExposureApprovalRecord(SQLModel, table=True):
    """An approver's consent that a staging version may take live traffic before production:
    in a rollout's rings or as an A/B variant (see :mod:`hub.registry.serving_policy`)."""

    __tablename__ = "exposure_approvals"
    __table_args__ = (UniqueConstraint("version_id", "approver", name="uq_exposure_approval"),)

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="model_versions.id", index=True)
    approver: str = Field(max_length=128)
    at: datetime = _utc_column()


class AgentRecord(SQLModel, table=True):
    __tablename__ = "agents"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=128)
    zone: str = Field(index=True, max_length=64)
    runtime: str = Field(max_length=32)
    labels: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    url: str | None = None
    software_version: str | None = None
    registered_at: datetime = _utc_column()
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
    first_at: datetime = _utc_column()
    last_at: datetime = _utc_column()
    last_reason: str = Field(default="", max_length=500)


class SealedBundleRecord(SQLModel, table=True):
    """A bundle's encrypted form; its data key lives in ``keys/bundles``, never here."""

    __tablename__ = "sealed_bundles"
    bundle_sha256: str = Field(primary_key=True, max_length=64)
    sealed_sha256: str = Field(max_length=64)
    sealed_length: int
    plain_length: int
    wrapped: dict[str, dict[str, str]] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    """Wrap context (target path and agent id) → the data key wrapped for that agent."""


class PublicationRecord(SQLModel, table=True):
    """Every publication of signed update metadata: what changed, why, who."""

    __tablename__ = "publications"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _utc_column()
    actor: str = Field(max_length=128)
    reason: str = Field(max_length=256)
    timestamp_version: int
    snapshot_version: int
    changed: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    groups: dict[str, dict[str, int]] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    """Role → model → version, as published."""
