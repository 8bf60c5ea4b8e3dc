"""Drift: no alerts said plainly; then an agent's drifting windows open one, plotted.

The agent is enrolled here (group ``drift``) and sends its drift windows as an
agent does, through its outbox endpoint; three drifted windows in a row open an
alert on the hub.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.widgets import DataTable

from appliance.client.hub import HubClient
from appliance.security.credentials import AgentCredentials
from appliance.wire.fleet import AgentReport
from tests.tui.conftest import MODEL, LiveHub, enrol_agent, signed_in, text_of, until
from tui import ConsoleApp
from tui.widgets.chart import Chart

pytestmark = pytest.mark.anyio
START = 1.75e9


def window(k: int, drifted: bool) -> AgentReport:
    body = {
        "model": MODEL,
        "version": 1,
        "method": "ks",
        "drifted": drifted,
        "p_values": [1e-6 if drifted else 0.4, 0.7],
        "distances": [0.3, 0.01],
        "threshold": 0.025,
        "window_size": 500,
        "started_at": START + 60 * k,
        "ended_at": START + 60 * (k + 1),
    }
    return AgentReport(key=f"drift-{k}", kind="drift", body=body)


def rows(app: ConsoleApp) -> list[list[str]]:
    table = app.screen.query_one("#drift-table", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def test_no_alerts_then_an_open_alert_with_its_plot(
    live_hub: LiveHub, console: Callable[..., ConsoleApp]
) -> None:
    app = console()
    async with app.run_test(size=(80, 24)) as pilot:
        await signed_in(pilot, live_hub, "sara")
        await pilot.press("6")
        await until(pilot, lambda: "no drift alerts" in text_of(app, "#drift-pane .list-status"))
        assert not rows(app)
        assert not app.screen.query_one("#drift-chart", Chart).note  # the status line says it

        with live_hub.client("admin") as admin:
            info, key = enrol_agent(
                live_hub, admin, "edge-drift", group="drift", keys=live_hub.root / "keys"
            )
        with HubClient(live_hub.url, credentials=AgentCredentials(key, info.id)) as agent:
            agent.send_reports(info.id, [window(k, drifted=k >= 2) for k in range(5)])

        await pilot.press("f5")
        alert = await until(pilot, lambda: rows(app) and rows(app)[0])
        assert alert[1:4] == ["OPEN", f"edge-drift (#{info.id})", MODEL]
        chart = app.screen.query_one("#drift-chart", Chart)
        await until(pilot, lambda: chart.has_class("plotted"))
        assert "5 windows of v1 (ks), 3 drifted" in text_of(app, "#drift-summary")
        assert "1 open" in text_of(app, "#drift-pane .list-status")
