"""Retraining schedules: queue a job on a cron expression or when drift is detected.

A schedule holds a job spec. With ``cron`` (five fields, UTC) an APScheduler
job submits it at those times; with ``on_drift`` the hub submits it when a
drift alert opens for the spec's model. Either way a model gets at most one
active (queued or running) job from schedules: a trigger while one is active
is skipped and logged, so a flapping alert cannot flood the GPU servers.
"""

from __future__ import annotations

import logging
from datetime import UTC
from typing import Any

import msgspec
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from appliance.clock import iso_utc
from appliance.errors import ConflictError, InvalidInputError, NotFoundError
from appliance.wire.training import JobInfo, JobSpec, ScheduleInfo, ScheduleSpec
from hub.audit.service import AuditLog
from hub.db import session_scope
from hub.monitoring.service import DriftAlertOpened
from hub.registry.service import NAME_PATTERN
from hub.training.jobs import TrainingJobs, check_spec
from hub.training.records import TrainingScheduleRecord

log = logging.getLogger(__name__)


def cron_trigger(expression: str) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(expression, timezone=UTC)
    except ValueError as exc:
        raise InvalidInputError(
            f"cron: {expression!r} is not a crontab expression: {exc}",
            hint="five fields, minute hour day month weekday (UTC), e.g. '0 2 * * 1'",
        ) from exc


class RetrainingSchedules:
    def __init__(self, engine: Engine, jobs: TrainingJobs, audit: AuditLog) -> None:
        self.engine = engine
        self.jobs = jobs
        self.audit = audit
        self._scheduler: BackgroundScheduler | None = None

    # -- records ---------------------------------------------------------------------------

    def create(self, spec: ScheduleSpec, *, actor: str) -> ScheduleInfo:
        if not NAME_PATTERN.fullmatch(spec.name):
            raise InvalidInputError(
                f"name: {spec.name!r} is not a valid schedule name",
                hint="use 1-64 lower-case letters, digits, '.', '_' or '-'",
            )
        check_spec(spec.job)
        if spec.cron is None and not spec.on_drift:
            raise InvalidInputError(
                "a schedule needs 'cron', 'on_drift': true, or both",
                hint='e.g. {"cron": "0 2 * * 1"} for Mondays 02:00 UTC',
            )
        if spec.cron is not None:
            cron_trigger(spec.cron)
        with session_scope(self.engine) as session:
            taken = session.exec(
                select(TrainingScheduleRecord).where(TrainingScheduleRecord.name == spec.name)
            ).first()
            if taken is not None:
                raise ConflictError(f"a schedule named {spec.name!r} exists")
            record = TrainingScheduleRecord(
                name=spec.name,
                model=spec.job.model,
                job=msgspec.to_builtins(spec.job),
                cron=spec.cron,
                on_drift=spec.on_drift,
                created_by=actor,
            )
            session.add(record)
            self.audit.append(
                session,
                actor=actor,
                action="training.schedule",
                target=f"training-schedule:{spec.name}",
                outcome="ok",
                detail={"cron": spec.cron, "on_drift": spec.on_drift, "model": spec.job.model},
            )
        self._arm(record)
        return self._info(record)

    def delete(self, name: str, *, actor: str) -> None:
        with session_scope(self.engine) as session:
            record = self._record(session, name)
            session.delete(record)
            self.audit.append(
                session,
                actor=actor,
                action="training.unschedule",
                target=f"training-schedule:{name}",
                outcome="ok",
            )
        if self._scheduler is not None and self._scheduler.get_job(_job_id(name)):
            self._scheduler.remove_job(_job_id(name))

    def list_all(self) -> list[ScheduleInfo]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(TrainingScheduleRecord).order_by(col(TrainingScheduleRecord.name))
            )
            return [self._info(r) for r in rows]

    # -- triggers --------------------------------------------------------------------------

    def fire(self, name: str, reason: str) -> JobInfo | None:
        """Submit the schedule's job unless its model already has one queued or running."""
        with Session(self.engine) as session:
            record = self._record(session, name)
            spec = msgspec.convert(record.job, JobSpec)
            actor = record.created_by
        active = self.jobs.active_for(spec.model)
        if active is not None:
            log.info(
                "%s: job %d for %s is still %s; skipped",
                reason,
                active.id,
                spec.model,
                active.state,
            )
            return None
        job = self.jobs.submit(spec, actor=actor, reason=reason)
        with session_scope(self.engine) as session:
            record = self._record(session, name)
            record.last_job_id = job.id
            session.add(record)
        return job

    def on_drift_alert(self, alert: DriftAlertOpened) -> None:
        with Session(self.engine) as session:
            names = session.exec(
                select(TrainingScheduleRecord.name).where(
                    TrainingScheduleRecord.model == alert.model,
                    TrainingScheduleRecord.on_drift == True,  # noqa: E712  (SQL, not Python)
                )
            ).all()
        for name in names:
            self.fire(name, f"drift:{alert.model}/{alert.version} on agent {alert.agent_id}")

    def _fire_logged(self, name: str) -> None:
        try:
            self.fire(name, f"schedule:{name}")
        except Exception:
            log.exception("scheduled training %r could not be queued", name)

    # -- the cron scheduler ------------------------------------------------------------------

    def start(self) -> None:
        self._scheduler = BackgroundScheduler(timezone=UTC, daemon=True)
        self._scheduler.start()
        with Session(self.engine) as session:
            for record in session.exec(select(TrainingScheduleRecord)):
                self._arm(record)

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    def _arm(self, record: TrainingScheduleRecord) -> None:
        if self._scheduler is None or record.cron is None:
            return
        self._scheduler.add_job(
            self._fire_logged,
            trigger=cron_trigger(record.cron),
            args=(record.name,),
            id=_job_id(record.name),
            name=f"retrain {record.model} ({record.name})",
            max_instances=1,
            coalesce=True,
            replace_existing=True,
        )

    def _next_run(self, name: str) -> str | None:
        job: Any = self._scheduler.get_job(_job_id(name)) if self._scheduler else None
        when = getattr(job, "next_run_time", None)
        return iso_utc(when) if when else None

    def _record(self, session: Session, name: str) -> TrainingScheduleRecord:
        record = session.exec(
            select(TrainingScheduleRecord).where(TrainingScheduleRecord.name == name)
        ).first()
        if record is None:
            raise NotFoundError(f"no training schedule {name!r}")
        return record

    def _info(self, record: TrainingScheduleRecord) -> ScheduleInfo:
        return ScheduleInfo(
            name=record.name,
            model=record.model,
            job=record.job,
            cron=record.cron,
            on_drift=record.on_drift,
            next_run_at=self._next_run(record.name),
            last_job_id=record.last_job_id,
            created_by=record.created_by,
        )


def _job_id(name: str) -> str:
    return f"retrain-{name}"
