"""Signed updates' records: sealed bundles and every publication of the metadata."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from hub.columns import utc_column


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
    at: datetime = utc_column()
    actor: str = Field(max_length=128)
    reason: str = Field(max_length=256)
    timestamp_version: int
    snapshot_version: int
    changed: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    groups: dict[str, dict[str, int]] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    """Role → model → version, as published."""
