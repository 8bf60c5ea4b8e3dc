"""The table of inference keys. The secret is kept only as its SHA-256."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, DateTime, Text
from sqlmodel import Field, SQLModel

from hub.columns import utc_column


class InferenceKeyRecord(SQLModel, table=True):
    __tablename__ = "inference_keys"

    id: int | None = Field(default=None, primary_key=True)
    key_id: str = Field(unique=True, index=True, max_length=32)
    """The public half of the key (``ak_<key_id>_<secret>``): how agents look it up."""
    secret_sha256: str = Field(max_length=64)
    """SHA-256 of the key's secret, or of the client certificate's DER when there is one."""
    certificate: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    """The client certificate (PEM) for a mutual-TLS credential; none for a bearer key."""
    name: str = Field(max_length=64)
    zone: str = Field(index=True, max_length=64)
    group: str = Field(index=True, max_length=64)
    models: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """Models the key may call; empty: every model of the group."""
    created_by: str = Field(max_length=128)
    created_at: datetime = utc_column()
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
