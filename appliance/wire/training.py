"""Wire schemas of the hub's training API, shared by the hub, the CLI and GPU workers.

A job file (``appliance train submit JOB.json``) is one :class:`JobSpec`::

    {"model": "churn", "features": ["customer_stats", "customer_usage:3"],
     "label_view": "churn_labels", "label": "churned",
     "trainer": "tabular-classification", "params": {"epochs": 40},
     "gate": {"thresholds": {"accuracy": 0.8}, "max_regression": {"accuracy": 0.01}}}

Views are ``name`` (the latest version when the job is submitted) or
``name:version``; the hub pins the versions at submission, so a re-run reads
the same definitions.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

JobState = Literal["queued", "running", "succeeded", "rejected", "failed", "cancelled"]
TERMINAL_STATES: frozenset[str] = frozenset({"succeeded", "rejected", "failed", "cancelled"})
BUILTIN_TRAINERS: tuple[str, ...] = ("tabular-classification", "tabular-regression")

HIGHER_IS_BETTER: frozenset[str] = frozenset({"accuracy", "r2"})
LOWER_IS_BETTER: frozenset[str] = frozenset({"log_loss", "rmse", "mae"})
GATE_METRICS: frozenset[str] = HIGHER_IS_BETTER | LOWER_IS_BETTER


class GateSpec(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """When a trained model may become a candidate version.

    ``thresholds``: each metric on the held-out split must be at least this good
    (at least the value for accuracy and r2, at most it for log_loss, rmse, mae).
    ``max_regression``: each metric may be at most this much worse than the
    production version's on the same split. Without a production version, or one
    that takes other inputs, only the thresholds apply.
    """

    thresholds: dict[str, float] = {}
    max_regression: dict[str, float] | None = None
    """``None``: the default, accuracy 0.01 (classification) or r2 0.01 (regression)."""


class JobSpec(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    model: str
    """The registry model the result becomes a candidate version of."""
    features: list[str]
    """Feature views joined point-in-time onto the label events (``name`` or ``name:version``)."""
    label_view: str
    """The view whose rows are the label events: its keys, event time and ``label`` column."""
    label: str
    trainer: str = "tabular-classification"
    """A built-in trainer or a user's own as ``package.module:function``."""
    params: dict[str, Any] = {}
    gate: GateSpec = msgspec.field(default_factory=GateSpec)
    zone: str | None = None
    """Where the job may run; default the label view's zone."""


class GpuSample(msgspec.Struct, kw_only=True, frozen=True):
    index: int
    name: str
    utilization_pct: float
    memory_used_mib: float
    memory_total_mib: float
    temperature_c: float
    power_w: float


class Telemetry(msgspec.Struct, kw_only=True, frozen=True):
    gpus: list[GpuSample] = []
    note: str = ""
    """Why there are no GPU figures (``no GPU``: no NVIDIA driver or device), else empty."""


class JobInfo(msgspec.Struct, kw_only=True):
    id: int
    model: str
    zone: str
    state: JobState
    spec: dict[str, Any]
    """The submitted spec with view versions pinned."""
    reason: str
    submitted_by: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    worker: str | None
    attempts: int
    progress: float
    message: str
    cancel_requested: bool
    telemetry: dict[str, Any]
    metrics: dict[str, float]
    result_version: int | None
    lineage: dict[str, Any]


class ClaimRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A worker asks for a job. Which worker it is, and the zone whose data it may read, come
    from its signed-in account (``appliance users create NAME --role worker --zone Z``), never
    from the request: a body naming a worker or a zone is refused."""

    telemetry: Telemetry = msgspec.field(default_factory=Telemetry)


class HeartbeatRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    progress: float = 0.0
    message: str = ""
    logs: list[str] = []
    telemetry: Telemetry = msgspec.field(default_factory=Telemetry)


class HeartbeatAnswer(msgspec.Struct, kw_only=True, frozen=True):
    cancel: bool
    lease_expires_at: str


class FailRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    reason: str
    cancelled: bool = False
    """True when the worker stopped because the job was cancelled."""


class LogLine(msgspec.Struct, kw_only=True, frozen=True):
    seq: int
    at: str
    line: str


class ScheduleSpec(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    name: str
    job: JobSpec
    cron: str | None = None
    """Five-field crontab (UTC), e.g. ``0 2 * * 1`` for Mondays 02:00."""
    on_drift: bool = False
    """Also queue the job when the hub opens a drift alert for the job's model."""


class ScheduleInfo(msgspec.Struct, kw_only=True):
    name: str
    model: str
    job: dict[str, Any]
    cron: str | None
    on_drift: bool
    next_run_at: str | None
    last_job_id: int | None
    created_by: str


class WorkerInfo(msgspec.Struct, kw_only=True):
    name: str
    zone: str
    account: str
    state: Literal["busy", "idle", "lost"]
    """``lost``: not seen for three leases."""
    first_seen_at: str
    last_seen_at: str
    job_id: int | None
    telemetry: Telemetry
    history: list[dict[str, Any]]
    """Recent readings, oldest first: ``{"at": epoch seconds, "gpus": [[utilisation %,
    memory MiB, temperature °C, power W], …]}`` in GPU index order."""
