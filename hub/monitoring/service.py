"""Taking in agents' reports once each, keeping drift history, raising drift alerts.

A report is stored under ``(agent, key)``; a key already held is acknowledged
again without storing anything, so an agent that resends after a crash or a
lost answer never counts twice. A drift alert opens when the last
``alert_windows`` reports for one agent, model and version all drifted, and
closes with the first window that did not. Opening one is audited and
announced to listeners (``on_alert``): the retraining schedules queue jobs there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlmodel import Session, col, select

from appliance.clock import iso_utc, utcnow
from appliance.errors import InvalidInputError
from appliance.wire.fleet import AbSummary, AgentReport, RefusedReport, ReportsAccepted
from appliance.wire.releases import DriftAlertInfo, DriftReportInfo, ServingReportInfo
from hub.audit.service import AuditLog
from hub.db import session_scope
from hub.fleet.standing import AgentStanding
from hub.monitoring.records import AgentReportRecord, DriftAlertRecord, DriftReportRecord
from hub.monitoring.report_checks import DriftBody, checked
from hub.pagination import page_after

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriftAlertOpened:
    agent_id: int
    model: str
    version: int
    windows: int

    @property
    def target(self) -> str:
        return f"model:{self.model}/{self.version} on agent:{self.agent_id}"


MAX_BATCH = 500


def _moment(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class MonitoringService:
    def __init__(
        self,
        engine: Engine,
        audit: AuditLog,
        *,
        alert_windows: int = 3,
        standing: AgentStanding | None = None,
    ) -> None:
        self.engine = engine
        self.standing = standing or AgentStanding()
        self.ab_check: Callable[[AbSummary], str | None] | None = None
        """Why an ``ab`` summary is refused by its experiment (unknown, out of bounds)."""
        self.audit = audit
        self.alert_windows = alert_windows
        self._alert_listeners: list[Callable[[DriftAlertOpened], None]] = []

    def ingest(
        self, agent_id: int, reports: list[AgentReport], *, actor: str = "system"
    ) -> ReportsAccepted:
        """Store each new, acceptable report; name every key now held (new and already
        known) and every report refused, with why (:mod:`hub.monitoring.report_checks`).

        One bad report never costs the batch: the rest is held as usual.
        """
        if len(reports) > MAX_BATCH:
            raise InvalidInputError(f"reports: at most {MAX_BATCH} per request")
        held: list[str] = []
        refused: list[RefusedReport] = []
        opened: list[DriftAlertOpened] = []
        for report in reports:
            body = checked(report)
            if isinstance(body, AbSummary) and self.ab_check:
                body = self.ab_check(body) or body
            if isinstance(body, str):
                refused.append(RefusedReport(key=report.key, reason=body[:500]))
                continue
            drift = body if isinstance(body, DriftBody) else None
            try:
                with session_scope(self.engine) as session:
                    record = AgentReportRecord(
                        agent_id=agent_id, key=report.key, kind=report.kind, body=report.body
                    )
                    session.add(record)
                    session.flush()
                    if drift is not None:
                        alert = self._store_drift(session, agent_id, record.id or 0, drift)
                        if alert:
                            opened.append(alert)
            except SAIntegrityError:
                pass  # this key is already held: acknowledge it again, store nothing
            held.append(report.key)
        for alert in opened:
            self._announce(alert)
        if refused:
            self._audit_refused(agent_id, refused, actor)
        return ReportsAccepted(accepted=held, refused=refused)

    def _audit_refused(self, agent_id: int, refused: list[RefusedReport], actor: str) -> None:
        with session_scope(self.engine) as session:
            self.standing.note_refused(session, agent_id, len(refused), refused[-1].reason)
            self.audit.append(
                session,
                actor=actor,
                action="reports.refused",
                target=f"agent:{agent_id}",
                outcome="refused",
                detail={
                    "count": len(refused),
                    "first": {"key": refused[0].key[:128], "reason": refused[0].reason[:300]},
                },
            )

    def on_alert(self, listener: Callable[[DriftAlertOpened], None]) -> None:
        """Call ``listener`` after each drift alert opens (its transaction committed)."""
        self._alert_listeners.append(listener)

    def _announce(self, alert: DriftAlertOpened) -> None:
        for listener in self._alert_listeners:
            try:
                listener(alert)
            except Exception:
                log.exception("reacting to a drift alert on %s failed", alert.target)

    def _store_drift(
        self, session: Session, agent_id: int, report_id: int, body: DriftBody
    ) -> DriftAlertOpened | None:
        session.add(
            DriftReportRecord(
                report_id=report_id,
                agent_id=agent_id,
                model=body.model,
                version=body.version,
                drifted=body.drifted,
                min_p_value=min(body.p_values),
                method=body.method,
                window_size=body.window_size,
                started_at=_moment(body.started_at),
                ended_at=_moment(body.ended_at),
                p_values=body.p_values,
                distances=body.distances,
            )
        )
        session.flush()
        recent = session.exec(
            select(DriftReportRecord.drifted)
            .where(
                DriftReportRecord.agent_id == agent_id,
                DriftReportRecord.model == body.model,
                DriftReportRecord.version == body.version,
            )
            .order_by(col(DriftReportRecord.id).desc())
            .limit(self.alert_windows)
        ).all()
        open_alert = session.exec(
            select(DriftAlertRecord).where(
                DriftAlertRecord.agent_id == agent_id,
                DriftAlertRecord.model == body.model,
                DriftAlertRecord.version == body.version,
                col(DriftAlertRecord.closed_at).is_(None),
            )
        ).first()
        target = f"model:{body.model}/{body.version} on agent:{agent_id}"
        if open_alert is not None and not body.drifted:
            open_alert.closed_at = utcnow()
            session.add(open_alert)
            self.audit.append(
                session,
                actor=f"agent:{agent_id}",
                action="drift.alert_closed",
                target=target,
                outcome="ok",
            )
            return None
        if open_alert is None and len(recent) >= self.alert_windows and all(recent):
            session.add(
                DriftAlertRecord(
                    agent_id=agent_id,
                    model=body.model,
                    version=body.version,
                    windows=self.alert_windows,
                )
            )
            self.audit.append(
                session,
                actor=f"agent:{agent_id}",
                action="drift.alert",
                target=target,
                outcome="ok",
                detail={"windows": self.alert_windows, "min_p_value": min(body.p_values)},
            )
            return DriftAlertOpened(agent_id, body.model, body.version, self.alert_windows)
        return None

    def drift_history(
        self,
        *,
        agent_id: int | None = None,
        model: str | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[DriftReportInfo]:
        with Session(self.engine) as session:
            query = select(DriftReportRecord)
            if agent_id is not None:
                query = query.where(DriftReportRecord.agent_id == agent_id)
            if model is not None:
                query = query.where(DriftReportRecord.model == model)
            rows = session.exec(page_after(query, col(DriftReportRecord.id), after_id, limit))
            return [
                DriftReportInfo(
                    id=r.id or 0,
                    agent_id=r.agent_id,
                    model=r.model,
                    version=r.version,
                    drifted=r.drifted,
                    min_p_value=r.min_p_value,
                    method=r.method,
                    window_size=r.window_size,
                    started_at=iso_utc(r.started_at),
                    ended_at=iso_utc(r.ended_at),
                    p_values=list(r.p_values),
                    distances=list(r.distances),
                )
                for r in rows
            ]

    def serving_history(
        self, *, agent_id: int | None = None, after_id: int = 0, limit: int = 100
    ) -> list[ServingReportInfo]:
        with Session(self.engine) as session:
            query = select(AgentReportRecord).where(AgentReportRecord.kind == "serving")
            if agent_id is not None:
                query = query.where(AgentReportRecord.agent_id == agent_id)
            rows = session.exec(page_after(query, col(AgentReportRecord.id), after_id, limit))
            return [
                ServingReportInfo(
                    id=r.id or 0,
                    agent_id=r.agent_id,
                    received_at=iso_utc(r.received_at),
                    summary=dict(r.body),
                )
                for r in rows
            ]

    def alerts_list(self, *, open_only: bool = False, limit: int = 100) -> list[DriftAlertInfo]:
        with Session(self.engine) as session:
            query = select(DriftAlertRecord)
            if open_only:
                query = query.where(col(DriftAlertRecord.closed_at).is_(None))
            rows = session.exec(query.order_by(col(DriftAlertRecord.id).desc()).limit(limit))
            return [
                DriftAlertInfo(
                    id=r.id or 0,
                    agent_id=r.agent_id,
                    model=r.model,
                    version=r.version,
                    windows=r.windows,
                    opened_at=iso_utc(r.opened_at),
                    closed_at=iso_utc(r.closed_at) if r.closed_at else None,
                )
                for r in rows
            ]

    def count(self, kind: str | None = None) -> int:
        with Session(self.engine) as session:
            query = select(func.count()).select_from(AgentReportRecord)
            if kind is not None:
                query = query.where(AgentReportRecord.kind == kind)
            return int(session.exec(query).one())
