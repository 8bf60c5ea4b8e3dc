"""The feature store's records in the hub's database (definitions, versions, snapshots)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, UniqueConstraint
from sqlmodel import Field, SQLModel

from hub.columns import utc_column


def _tz_column() -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class EntityRecord(SQLModel, table=True):
    __tablename__ = "feature_entities"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=64)
    join_keys: list[dict[str, str]] = Field(sa_column=Column(JSON, nullable=False))
    description: str = ""
    created_at: datetime = utc_column()
    created_by: str = Field(default="system", max_length=128)


class FeatureViewRecord(SQLModel, table=True):
    __tablename__ = "feature_views"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=64)
    last_version: int = 0
    """Highest version handed out; versions are monotonic and never reused."""
    created_at: datetime = utc_column()


class FeatureViewVersionRecord(SQLModel, table=True):
    __tablename__ = "feature_view_versions"
    __table_args__ = (UniqueConstraint("view_id", "version", name="uq_feature_view_version"),)

    id: int | None = Field(default=None, primary_key=True)
    view_id: int = Field(foreign_key="feature_views.id", index=True)
    version: int
    definition: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    """The view's definition with its entity's join keys, exactly as validated."""
    definition_sha256: str = Field(max_length=64)
    zone: str = Field(index=True, max_length=64)
    created_at: datetime = utc_column()
    created_by: str = Field(default="system", max_length=128)


class FeatureSnapshotRecord(SQLModel, table=True):
    """One accepted ingest: a Parquet file in the offline store, named by its hash."""

    __tablename__ = "feature_snapshots"
    __table_args__ = (UniqueConstraint("version_id", "sha256", name="uq_feature_snapshot"),)

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="feature_view_versions.id", index=True)
    sha256: str = Field(max_length=64)
    path: str = Field(max_length=512)
    rows: int
    min_event_time: datetime = _tz_column()
    max_event_time: datetime = _tz_column()
    source: str = Field(default="", max_length=256)
    created_at: datetime = utc_column()
    created_by: str = Field(default="system", max_length=128)
