"""The hub's view of its training workers: who is there, what it runs, how its GPUs fare.

A worker is recorded when it first claims (it polls the queue even when idle),
and refreshed by every claim and heartbeat with its latest GPU readings, of
which the last ``HISTORY`` are kept for the console's plots.
"""

from __future__ import annotations

from datetime import timedelta

import msgspec
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlmodel import Session, col, select

from appliance.clock import as_utc, iso_utc, utcnow
from appliance.wire.training import Telemetry, WorkerInfo
from hub.db import session_scope
from hub.training.records import TrainingWorkerRecord

HISTORY = 120
"""Readings kept per worker: 10 minutes at the default 5 s poll or heartbeat."""
LOST_AFTER_LEASES = 3


def compact(telemetry: Telemetry) -> list[list[float]]:
    return [
        [g.utilization_pct, round(g.memory_used_mib, 1), g.temperature_c, round(g.power_w, 1)]
        for g in telemetry.gpus
    ]


class WorkerDirectory:
    def __init__(self, engine: Engine, *, lease_s: float) -> None:
        self.engine = engine
        self.lease_s = lease_s

    def seen(
        self, name: str, *, zone: str, account: str, telemetry: Telemetry, job_id: int | None
    ) -> None:
        """Record a sign of life; two first sightings at once keep one row."""
        try:
            self._seen(name, zone, account, telemetry, job_id)
        except SAIntegrityError:
            self._seen(name, zone, account, telemetry, job_id)

    def _seen(
        self, name: str, zone: str, account: str, telemetry: Telemetry, job_id: int | None
    ) -> None:
        now = utcnow()
        with session_scope(self.engine) as session:
            record = session.exec(
                select(TrainingWorkerRecord).where(TrainingWorkerRecord.name == name)
            ).first()
            if record is None:
                record = TrainingWorkerRecord(name=name, zone=zone, account=account)
            record.zone, record.account = zone, account
            record.last_seen_at, record.job_id = now, job_id
            record.telemetry = msgspec.to_builtins(telemetry)
            if telemetry.gpus:
                reading = {"at": round(now.timestamp(), 1), "gpus": compact(telemetry)}
                record.history = [*record.history, reading][-HISTORY:]
            session.add(record)

    def list_all(self) -> list[WorkerInfo]:
        lost_before = utcnow() - timedelta(seconds=self.lease_s * LOST_AFTER_LEASES)
        with Session(self.engine) as session:
            rows = session.exec(
                select(TrainingWorkerRecord).order_by(col(TrainingWorkerRecord.name))
            ).all()
            return [
                WorkerInfo(
                    name=r.name,
                    zone=r.zone,
                    account=r.account,
                    state="lost"
                    if as_utc(r.last_seen_at) < lost_before
                    else ("busy" if r.job_id is not None else "idle"),
                    first_seen_at=iso_utc(r.first_seen_at),
                    last_seen_at=iso_utc(r.last_seen_at),
                    job_id=r.job_id,
                    telemetry=msgspec.convert(r.telemetry, Telemetry),
                    history=r.history,
                )
                for r in rows
            ]
