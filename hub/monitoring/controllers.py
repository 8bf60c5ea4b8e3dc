"""Reports in from agents; drift history and alerts out, for plots and operators."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post

from appliance.wire.fleet import AgentReport, ReportsAccepted
from appliance.wire.releases import DriftAlertInfo, DriftReportInfo, ServingReportInfo
from hub.auth.guards import principal_of, requires
from hub.auth.roles import Permission as P
from hub.fleet.service import check_agent_scope
from hub.monitoring.service import MonitoringService
from hub.pagination import After, Limit, RecordId


class ReportsController(Controller):
    path = "/api/v1/agents/{agent_id:int}/reports"
    tags = ["monitoring"]

    @post(
        "/",
        operation_id="sendAgentReports",
        guards=[requires(P.AGENT_SELF)],
        status_code=200,
        sync_to_thread=True,
    )
    def send(
        self,
        agent_id: int,
        data: list[AgentReport],
        monitoring: MonitoringService,
        request: Request[Any, Any, Any],
    ) -> ReportsAccepted:
        """Outbox delivery: each key is stored once; every key held is acknowledged."""
        principal = principal_of(request)
        check_agent_scope(principal, agent_id)
        return monitoring.ingest(agent_id, data, actor=principal.actor)


class DriftController(Controller):
    path = "/api/v1/drift"
    tags = ["monitoring"]
    guards = [requires(P.AGENTS_READ)]

    @get("/reports", operation_id="listDriftReports", sync_to_thread=True)
    def reports(
        self,
        monitoring: MonitoringService,
        agent_id: RecordId = None,
        model: str | None = None,
        after: After = 0,
        limit: Limit = 100,
    ) -> list[DriftReportInfo]:
        """Drift test results, oldest first: per-feature p-values over time, for plots."""
        return monitoring.drift_history(agent_id=agent_id, model=model, after_id=after, limit=limit)

    @get("/serving", operation_id="listServingReports", sync_to_thread=True)
    def serving(
        self,
        monitoring: MonitoringService,
        agent_id: RecordId = None,
        after: After = 0,
        limit: Limit = 100,
    ) -> list[ServingReportInfo]:
        """Agents' request, error and latency summaries per model version, oldest first."""
        return monitoring.serving_history(agent_id=agent_id, after_id=after, limit=limit)

    @get("/alerts", operation_id="listDriftAlerts", sync_to_thread=True)
    def alerts(
        self, monitoring: MonitoringService, open: bool = False, limit: Limit = 100
    ) -> list[DriftAlertInfo]:
        """Drift alerts, newest first; ``open=true`` for the ones still open."""
        return monitoring.alerts_list(open_only=open, limit=limit)
