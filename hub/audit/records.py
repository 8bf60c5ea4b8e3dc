"""The audit log's tables. ``hub.tables`` imports this module so ``create_schema`` creates them.

``audit_entries`` is append-only: the hub never updates or deletes a row.
``seq`` is its primary key and ``prev_hash`` is unique, so even a bug in the
locking could not fork the chain (two entries after the same one). The
single-row ``audit_head`` holds the newest (seq, hash); appends lock it to
take turns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Column, DateTime, UniqueConstraint
from sqlmodel import Field, SQLModel

from hub.audit.schemas import GENESIS_HASH

HEAD_ROW_ID = 1


class AuditEntryRecord(SQLModel, table=True):
    __tablename__ = "audit_entries"
    __table_args__ = (UniqueConstraint("prev_hash", name="uq_audit_entries_prev_hash"),)

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    actor: str = Field(index=True, max_length=128)
    action: str = Field(index=True, max_length=64)
    target: str = Field(max_length=512)
    outcome: str = Field(max_length=16)
    source: str | None = Field(default=None, max_length=128)
    detail: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditCheckpointRecord(SQLModel, table=True):
    __tablename__ = "audit_checkpoints"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    head_hash: str = Field(max_length=64)
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    key_id: str = Field(max_length=64)
    signature: str = Field(max_length=128)


class AuditHeadRecord(SQLModel, table=True):
    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint(f"id = {HEAD_ROW_ID}", name="ck_audit_head_one_row"),)

    id: int = Field(
        default=HEAD_ROW_ID, primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    seq: int = 0
    hash: str = Field(default=GENESIS_HASH, max_length=64)
