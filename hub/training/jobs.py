"""Training jobs: a queue in the hub's records, worked off by GPU workers under leases.

A job is submitted (``queued``), claimed by one worker at a time (``running``,
with a lease the worker renews by heartbeat), and ends ``succeeded`` (a
candidate version was registered), ``rejected`` (trained, but the evaluation
gate said no), ``failed`` or ``cancelled``. A worker that stops heartbeating
loses its lease: the job goes back to the queue, up to ``MAX_ATTEMPTS`` claims
in all. Cancelling a running job sets a flag the worker reads in its next
heartbeat; it stops mid-run and reports. Every change of state is audited.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import msgspec
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from appliance.clock import as_utc, iso_utc, utcnow
from appliance.errors import ConflictError, InvalidInputError, NotFoundError
from appliance.wire.training import (
    BUILTIN_TRAINERS,
    GATE_METRICS,
    TERMINAL_STATES,
    ClaimRequest,
    FailRequest,
    HeartbeatAnswer,
    HeartbeatRequest,
    JobInfo,
    JobSpec,
    LogLine,
)
from hub.audit.service import AuditLog
from hub.auth.principal import Principal
from hub.db import session_scope
from hub.features.service import FeatureStore, TrainingSet, parse_view_ref
from hub.registry.service import RegistryService, check_model_name
from hub.residency.policy import ResidencyPolicy
from hub.training.records import TrainingJobRecord, TrainingLogRecord
from hub.training.workers import WorkerDirectory

MAX_ATTEMPTS = 3
"""Claims a job gets; a job whose workers were all lost this often fails."""
MAX_LOG_LINES = 5000
"""Log lines kept per job; later ones are counted but not stored."""
LOG_LINE_CHARS = 2000
CUSTOM_TRAINER = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
BUILTIN_PARAMS = frozenset(
    {
        "hidden",
        "epochs",
        "learning_rate",
        "weight_decay",
        "batch_size",
        "test_fraction",
        "seed",
        "precision",
    }
)
ACTIVE_STATES = ("queued", "running")


def job_info(record: TrainingJobRecord) -> JobInfo:
    return JobInfo(
        id=record.id or 0,
        model=record.model,
        zone=record.zone,
        state=record.state,  # type: ignore[arg-type]
        spec=record.spec,
        reason=record.reason,
        submitted_by=record.submitted_by,
        created_at=iso_utc(record.created_at),
        started_at=iso_utc(record.started_at) if record.started_at else None,
        finished_at=iso_utc(record.finished_at) if record.finished_at else None,
        worker=record.worker,
        attempts=record.attempts,
        progress=record.progress,
        message=record.message,
        cancel_requested=record.cancel_requested,
        telemetry=record.telemetry,
        metrics=record.metrics,
        result_version=record.result_version,
        lineage=record.lineage,
    )


def check_spec(spec: JobSpec) -> None:
    """What can be checked without reading the feature store."""
    check_model_name(spec.model)
    if not spec.features:
        raise InvalidInputError("features: name at least one feature view")
    if spec.trainer not in BUILTIN_TRAINERS and not CUSTOM_TRAINER.fullmatch(spec.trainer):
        raise InvalidInputError(
            f"trainer: {spec.trainer!r} is neither built in nor 'package.module:function'",
            hint=f"built in: {', '.join(BUILTIN_TRAINERS)}",
        )
    if spec.trainer in BUILTIN_TRAINERS:
        unknown = sorted(set(spec.params) - BUILTIN_PARAMS)
        if unknown:
            raise InvalidInputError(
                f"params: {', '.join(unknown)} not known to {spec.trainer}",
                hint=f"known: {', '.join(sorted(BUILTIN_PARAMS))}",
            )
    gate = spec.gate
    for name in [*gate.thresholds, *(gate.max_regression or {})]:
        if name not in GATE_METRICS:
            raise InvalidInputError(
                f"gate: unknown metric {name!r}", hint=f"known: {', '.join(sorted(GATE_METRICS))}"
            )


class TrainingJobs:
    def __init__(
        self,
        engine: Engine,
        features: FeatureStore,
        registry: RegistryService,
        policy: ResidencyPolicy,
        audit: AuditLog,
        *,
        lease_s: float = 60.0,
    ) -> None:
        self.workers = WorkerDirectory(engine, lease_s=lease_s)
        self.engine = engine
        self.features = features
        self.registry = registry
        self.policy = policy
        self.audit = audit
        self.lease_s = lease_s

    # -- submitting and reading ----------------------------------------------------------

    def submit(self, spec: JobSpec, *, actor: str, reason: str = "manual") -> JobInfo:
        """Check the spec, pin the views' versions and queue the job."""
        check_spec(spec)
        label_info = self.features.get_view(*parse_view_ref(spec.label_view))
        if spec.label not in {f.name for f in label_info.features}:
            raise InvalidInputError(
                f"label: view {label_info.name!r} has no feature {spec.label!r}",
                hint=f"its features are {', '.join(f.name for f in label_info.features)}",
            )
        views = [self.features.get_view(*parse_view_ref(ref)) for ref in spec.features]
        if label_info.name in {v.name for v in views}:
            raise InvalidInputError(
                f"features: {label_info.name!r} is the label view",
                hint="a model must not learn from its own labels; leave it out of the features",
            )
        zone = spec.zone or label_info.zone
        self.policy.check_zones([zone], "zone")
        pinned = msgspec.structs.replace(
            spec,
            features=[f"{v.name}:{v.version}" for v in views],
            label_view=f"{label_info.name}:{label_info.version}",
            zone=zone,
        )
        with session_scope(self.engine) as session:
            record = TrainingJobRecord(
                model=spec.model,
                zone=zone,
                spec=msgspec.to_builtins(pinned),
                reason=reason,
                submitted_by=actor,
            )
            session.add(record)
            session.flush()
            self.audit.append(
                session,
                actor=actor,
                action="training.submit",
                target=f"training-job:{record.id}",
                outcome="ok",
                detail={"model": spec.model, "trainer": spec.trainer, "reason": reason},
            )
            return job_info(record)

    def get(self, job_id: int) -> JobInfo:
        with Session(self.engine) as session:
            return job_info(self._job(session, job_id))

    def list_jobs(
        self,
        *,
        state: str | None = None,
        model: str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[JobInfo]:
        """Newest first; ``after`` is the smallest id of the previous page (0: first page)."""
        query = select(TrainingJobRecord)
        if state:
            query = query.where(TrainingJobRecord.state == state)
        if model:
            query = query.where(TrainingJobRecord.model == model)
        if after:
            query = query.where(col(TrainingJobRecord.id) < after)
        with Session(self.engine) as session:
            rows = session.exec(query.order_by(col(TrainingJobRecord.id).desc()).limit(limit))
            return [job_info(r) for r in rows]

    def get_leased(self, job_id: int, worker: str) -> JobInfo:
        """The job, if ``worker`` holds its lease (else 409: stop working on it)."""
        with Session(self.engine) as session:
            return job_info(self._leased(session, job_id, worker))

    def logs(self, job_id: int, *, after: int = 0, limit: int = 1000) -> list[LogLine]:
        with Session(self.engine) as session:
            self._job(session, job_id)
            rows = session.exec(
                select(TrainingLogRecord)
                .where(TrainingLogRecord.job_id == job_id, TrainingLogRecord.seq > after)
                .order_by(col(TrainingLogRecord.seq))
                .limit(limit)
            )
            return [LogLine(seq=r.seq, at=iso_utc(r.at), line=r.line) for r in rows]

    def active_for(self, model: str) -> JobInfo | None:
        with Session(self.engine) as session:
            row = session.exec(
                select(TrainingJobRecord).where(
                    TrainingJobRecord.model == model,
                    col(TrainingJobRecord.state).in_(ACTIVE_STATES),
                )
            ).first()
            return job_info(row) if row else None

    # -- cancelling ------------------------------------------------------------------------

    def cancel(self, job_id: int, *, actor: str) -> JobInfo:
        """A queued job ends now; a running one is told at its worker's next heartbeat."""
        with session_scope(self.engine) as session:
            record = self._job(session, job_id, lock=True)
            if record.state in TERMINAL_STATES:
                raise ConflictError(f"training job {job_id} already ended ({record.state})")
            if record.state == "queued":
                self._finish(session, record, "cancelled", f"cancelled by {actor} before it ran")
            else:
                record.cancel_requested = True
                record.message = f"cancellation requested by {actor}; waiting for the worker"
                session.add(record)
            self.audit.append(
                session,
                actor=actor,
                action="training.cancel",
                target=f"training-job:{job_id}",
                outcome="ok",
                detail={"state": record.state},
            )
            return job_info(record)

    # -- the worker's side -----------------------------------------------------------------

    def claim(self, request: ClaimRequest, worker: Principal) -> JobInfo | None:
        """Give the oldest queued job the worker's zone may read to the worker, leased.

        The worker is its account (``worker.name``) and its zone the account's, or the hub's
        home zone: never what the request says.
        """
        zone = self.worker_zone(worker)
        self.requeue_expired()
        readable = [z for z in self.policy.zones if self.policy.decide("read", zone, [z]).allowed]
        with session_scope(self.engine) as session:
            record = session.exec(
                select(TrainingJobRecord)
                .where(
                    TrainingJobRecord.state == "queued",
                    col(TrainingJobRecord.zone).in_(readable),
                )
                .order_by(col(TrainingJobRecord.id))
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            claimed = (
                None
                if record is None
                else self._lease(session, record, request, worker.name, zone, worker.actor)
            )
        self.workers.seen(
            worker.name,
            zone=zone,
            account=worker.actor,
            telemetry=request.telemetry,
            job_id=claimed.id if claimed else None,
        )
        return claimed

    def worker_zone(self, worker: Principal) -> str:
        zone = worker.zone or self.features.home_zone
        self.policy.check_zones([zone], "zone")
        return zone

    def _lease(
        self,
        session: Session,
        record: TrainingJobRecord,
        request: ClaimRequest,
        worker: str,
        zone: str,
        actor: str,
    ) -> JobInfo:
        """Lease ``record`` to the claiming worker (inside the claim's transaction)."""
        now = utcnow()
        record.state = "running"
        record.worker = worker
        record.worker_zone = zone
        record.attempts += 1
        record.started_at = record.started_at or now
        record.lease_expires_at = now + timedelta(seconds=self.lease_s)
        record.progress = 0.0
        record.message = f"claimed by {worker} (attempt {record.attempts})"
        record.telemetry = msgspec.to_builtins(request.telemetry)
        session.add(record)
        self._log(session, record, record.message)
        self.audit.append(
            session,
            actor=actor,
            action="training.claim",
            target=f"training-job:{record.id}",
            outcome="ok",
            detail={"worker": worker, "zone": zone, "attempt": record.attempts},
        )
        return job_info(record)

    def heartbeat(self, job_id: int, beat: HeartbeatRequest, worker: Principal) -> HeartbeatAnswer:
        """Renew the lease, keep progress, log lines and GPU readings; say if cancelled."""
        with session_scope(self.engine) as session:
            record = self._leased(session, job_id, worker.name)
            record.lease_expires_at = utcnow() + timedelta(seconds=self.lease_s)
            record.progress = min(max(beat.progress, 0.0), 1.0)
            if beat.message and not record.cancel_requested:
                record.message = beat.message[:LOG_LINE_CHARS]
            record.telemetry = msgspec.to_builtins(beat.telemetry)
            for line in beat.logs:
                self._log(session, record, line)
            session.add(record)
            answer = HeartbeatAnswer(
                cancel=record.cancel_requested,
                lease_expires_at=iso_utc(record.lease_expires_at),
            )
            zone = record.worker_zone or record.zone
        self.workers.seen(
            worker.name, zone=zone, account=worker.actor, telemetry=beat.telemetry, job_id=job_id
        )
        return answer

    def dataset(self, job_id: int, worker: Principal) -> TrainingSet:
        """The job's point-in-time training set, read from the worker's zone, for the worker
        that holds its lease only."""
        with Session(self.engine) as session:
            record = self._leased(session, job_id, worker.name)
            spec = msgspec.convert(record.spec, JobSpec)
            zone = record.worker_zone or record.zone
        return self.features.labelled_training_set(
            spec.label_view,
            spec.label,
            spec.features,
            zone=zone,
            actor=worker.actor,
            source=f"training-job:{job_id}",
        )

    def complete(
        self,
        job_id: int,
        worker: Principal,
        *,
        onnx_bytes: bytes | None,
        reference_npy: bytes | None,
        metrics: dict[str, float],
        lineage: dict[str, Any],
        verdict: str,
    ) -> JobInfo:
        """Record a finished run: register the candidate if the gate passed, else reject."""
        with Session(self.engine) as session:
            record = self._leased(session, job_id, worker.name)
        if verdict not in ("passed", "rejected"):
            raise InvalidInputError("verdict: 'passed' or 'rejected'")
        version = None
        if verdict == "passed":
            if onnx_bytes is None:
                raise InvalidInputError("model: a passed job must upload its ONNX model")
            info = self.registry.register_version(
                record.model,
                onnx_bytes,
                reference_npy=reference_npy,
                metrics=metrics,
                lineage={**lineage, "training_job": job_id},
                zones=self._data_zones(record),
                actor=record.submitted_by,
            )
            version = info.version
        with session_scope(self.engine) as session:
            record = self._leased(session, job_id, worker.name, lock=True)
            record.metrics = metrics
            record.lineage = lineage
            record.result_version = version
            if version is not None:
                message = f"registered {record.model} v{version} as a candidate"
                self._finish(session, record, "succeeded", message)
            else:
                message = str(lineage.get("gate", {}).get("summary", "the evaluation gate said no"))
                self._finish(session, record, "rejected", message)
            self.audit.append(
                session,
                actor=worker.actor,
                action="training.complete",
                target=f"training-job:{job_id}",
                outcome="ok",
                detail={
                    "worker": worker.name,
                    "verdict": verdict,
                    "version": version,
                    "metrics": metrics,
                },
            )
            return job_info(record)

    def fail(self, job_id: int, request: FailRequest, worker: Principal) -> JobInfo:
        with session_scope(self.engine) as session:
            record = self._leased(session, job_id, worker.name, lock=True)
            state = "cancelled" if request.cancelled and record.cancel_requested else "failed"
            self._finish(session, record, state, request.reason[:LOG_LINE_CHARS])
            self.audit.append(
                session,
                actor=worker.actor,
                action=f"training.{'cancelled' if state == 'cancelled' else 'fail'}",
                target=f"training-job:{job_id}",
                outcome="ok" if state == "cancelled" else "error",
                detail={"worker": worker.name, "reason": request.reason[:200]},
            )
            return job_info(record)

    def requeue_expired(self) -> list[int]:
        """Put jobs whose worker stopped heartbeating back in the queue (or end them)."""
        moved: list[int] = []
        with session_scope(self.engine) as session:
            rows = session.exec(
                select(TrainingJobRecord)
                .where(
                    TrainingJobRecord.state == "running",
                    col(TrainingJobRecord.lease_expires_at) < utcnow(),
                )
                .with_for_update(skip_locked=True)
            ).all()
            for record in rows:
                lost = f"worker {record.worker} stopped heartbeating (lease expired)"
                if record.cancel_requested:
                    self._finish(session, record, "cancelled", f"{lost}; it had been cancelled")
                elif record.attempts >= MAX_ATTEMPTS:
                    self._finish(session, record, "failed", f"{lost}; {record.attempts} attempts")
                else:
                    record.state = "queued"
                    record.message = f"{lost}; back in the queue"
                    record.lease_expires_at = None
                    record.worker = None
                    session.add(record)
                    self._log(session, record, record.message)
                self.audit.append(
                    session,
                    actor="system:training",
                    action="training.lease_expired",
                    target=f"training-job:{record.id}",
                    outcome="ok",
                    detail={"state": record.state, "attempts": record.attempts},
                )
                moved.append(record.id or 0)
        return moved

    # -- helpers -------------------------------------------------------------------------

    def _job(self, session: Session, job_id: int, *, lock: bool = False) -> TrainingJobRecord:
        query = select(TrainingJobRecord).where(TrainingJobRecord.id == job_id)
        record = session.exec(query.with_for_update() if lock else query).first()
        if record is None:
            raise NotFoundError(f"no training job {job_id}")
        return record

    def _leased(
        self, session: Session, job_id: int, worker: str, *, lock: bool = False
    ) -> TrainingJobRecord:
        """The job, if ``worker`` still holds its lease; a 409 tells the worker to stop."""
        record = self._job(session, job_id, lock=lock)
        expired = record.lease_expires_at is not None and as_utc(record.lease_expires_at) < utcnow()
        if record.state != "running" or record.worker != worker or expired:
            raise ConflictError(
                f"training job {job_id} is not leased to {worker} "
                f"(it is {record.state}{', held by ' + record.worker if record.worker else ''})",
                hint="stop working on it; another worker may have it",
            )
        return record

    def _data_zones(self, record: TrainingJobRecord) -> list[str]:
        """The zones of the data a job read: its model inherits them."""
        spec = msgspec.convert(record.spec, JobSpec)
        refs = [spec.label_view, *spec.features]
        return sorted({self.features.get_view(*parse_view_ref(r)).zone for r in refs})

    def _finish(
        self, session: Session, record: TrainingJobRecord, state: str, message: str
    ) -> None:
        record.state = state
        record.message = message
        record.finished_at = utcnow()
        record.lease_expires_at = None
        if state == "succeeded":
            record.progress = 1.0
        session.add(record)
        self._log(session, record, message)

    def _log(self, session: Session, record: TrainingJobRecord, line: str) -> None:
        record.log_lines += 1
        if record.log_lines <= MAX_LOG_LINES:
            session.add(
                TrainingLogRecord(
                    job_id=record.id or 0, seq=record.log_lines, line=line[:LOG_LINE_CHARS]
                )
            )
        session.add(record)
