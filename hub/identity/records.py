"""Tables for people and credentials. Secrets are stored only as hashes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, DateTime
from sqlmodel import Field, SQLModel

from hub.columns import utc_column


class UserRecord(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, index=True, max_length=64)
    password_hash: str
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    disabled: bool = False
    created_at: datetime = utc_column()


class AccountZoneRecord(SQLModel, table=True):
    """The residency zone an account is bound to (a training worker's: the data it may read).

    A table of its own, so hubs from before it gain it without a migration; accounts
    without a row belong to the hub's home zone.
    """

    __tablename__ = "account_zones"

    user_id: int = Field(foreign_key="users.id", primary_key=True)
    zone: str = Field(max_length=64)


class RefreshTokenRecord(SQLModel, table=True):
    __tablename__ = "refresh_tokens"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    token_sha256: str = Field(unique=True, index=True, max_length=64)
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    revoked: bool = False


class RevokedTokenRecord(SQLModel, table=True):
    """Access tokens revoked before they expire (sign-out, user disabled)."""

    __tablename__ = "revoked_tokens"

    jti: str = Field(primary_key=True, max_length=64)
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
