"""The model registry's records: models, their versions, and the approvals they carry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from hub.columns import utc_column


class ModelRecord(SQLModel, table=True):
    __tablename__ = "models"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=128)
    created_at: datetime = utc_column()
    last_version: int = 0
    """Highest version number handed out; versions never repeat, even after a failed build."""


class ModelVersionRecord(SQLModel, table=True):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_version"),)

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", index=True)
    version: int
    stage: str = Field(default="candidate", index=True, max_length=16)
    created_at: datetime = utc_column()
    stage_changed_at: datetime = utc_column()
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
    at: datetime = utc_column()


class ExposureApprovalRecord(SQLModel, table=True):
    """An approver's consent that a staging version may take live traffic before production:
    in a rollout's rings or as an A/B variant (see :mod:`hub.registry.serving_policy`)."""

    __tablename__ = "exposure_approvals"
    __table_args__ = (UniqueConstraint("version_id", "approver", name="uq_exposure_approval"),)

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="model_versions.id", index=True)
    approver: str = Field(max_length=128)
    at: datetime = utc_column()
