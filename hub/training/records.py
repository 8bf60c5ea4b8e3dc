"""Training jobs, their log lines and retraining schedules as the hub records them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime
from sqlmodel import Field, SQLModel

from appliance.clock import utcnow


def _when(nullable: bool) -> Any:
    return Column(DateTime(timezone=True), nullable=nullable)


class TrainingJobRecord(SQLModel, table=True):
    __tablename__ = "training_jobs"
    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(max_length=128, index=True)
    zone: str = Field(max_length=64)
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    state: str = Field(default="queued", max_length=16, index=True)
    reason: str = Field(default="manual", max_length=256)
    """Why the job exists: ``manual``, ``schedule:<name>`` or ``drift:<model>/<version>``."""
    submitted_by: str = Field(max_length=128)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when(False))
    started_at: datetime | None = Field(default=None, sa_column=_when(True))
    finished_at: datetime | None = Field(default=None, sa_column=_when(True))
    worker: str | None = Field(default=None, max_length=128)
    worker_zone: str | None = Field(default=None, max_length=64)
    lease_expires_at: datetime | None = Field(default=None, sa_column=_when(True))
    attempts: int = 0
    progress: float = 0.0
    message: str = Field(default="", max_length=2000)
    cancel_requested: bool = False
    telemetry: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    metrics: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    result_version: int | None = None
    lineage: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    log_lines: int = 0


class TrainingLogRecord(SQLModel, table=True):
    __tablename__ = "training_logs"
    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="training_jobs.id", index=True)
    seq: int
    at: datetime = Field(default_factory=utcnow, sa_column=_when(False))
    line: str = Field(max_length=2000)


class TrainingScheduleRecord(SQLModel, table=True):
    __tablename__ = "training_schedules"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    model: str = Field(max_length=128, index=True)
    job: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    cron: str | None = Field(default=None, max_length=128)
    on_drift: bool = False
    last_job_id: int | None = None
    created_by: str = Field(max_length=128)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when(False))


class TrainingWorkerRecord(SQLModel, table=True):
    """A GPU server's worker as last seen: on every claim (idle poll) and every heartbeat."""

    __tablename__ = "training_workers"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128, unique=True)
    zone: str = Field(max_length=64)
    account: str = Field(max_length=128)
    """The signed-in account it works as (``user:gpu01``)."""
    first_seen_at: datetime = Field(default_factory=utcnow, sa_column=_when(False))
    last_seen_at: datetime = Field(default_factory=utcnow, sa_column=_when(False))
    job_id: int | None = None
    """The job it holds now, if any."""
    telemetry: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    history: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    """Recent GPU readings, oldest first: ``{"at": epoch_s, "gpus": [[util, mem_mib, temp_c,
    power_w], …]}`` (compact: plotted by the console)."""
