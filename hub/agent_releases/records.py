"""The table of agent releases the hub holds (the archives are files beside it)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from hub.columns import utc_column


class AgentReleaseRecord(SQLModel, table=True):
    __tablename__ = "agent_releases"

    id: int | None = Field(default=None, primary_key=True)
    version: str = Field(unique=True, index=True, max_length=64)
    name: str = Field(max_length=128)
    """The archive's folder: ``appliance-agent-<version>``."""
    sums_sha256: str = Field(max_length=64)
    """SHA-256 of its signed ``SHA256SUMS``: tells two builds of one version apart."""
    archive_sha256: str = Field(max_length=64)
    """SHA-256 of the archive file, for the agents that download it."""
    size: int
    key_id: str = Field(max_length=64)
    """The release key that signed it."""
    uploaded_by: str = Field(max_length=128)
    uploaded_at: datetime = utc_column()
