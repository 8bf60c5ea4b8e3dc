"""Fleet: the enrolled agent shows with what it runs; filter, details (with its drift and
latency), enrol, revoke, export an offline update bundle."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, ProgressBar

from appliance.wire.fleet import AgentReport, Heartbeat, InstalledModel
from tests.tui.conftest import (
    EDGE_RELEASE,
    MODEL,
    LiveHub,
    agent_client,
    enrol_agent,
    settled,
    signed_in,
    text_of,
    until,
)
from tui import ConsoleApp
from tui.dialogs import (
    AgentDialog,
    ConfirmDialog,
    DownloadDialog,
    EnrolDialog,
    ExportDialog,
    InfoDialog,
)
from tui.widgets import FleetPane

pytestmark = pytest.mark.anyio


def rows(app: ConsoleApp) -> list[dict[str, str]]:
    """The fleet table as shown: one dict per row, by column label."""
    table = app.screen.query_one("#fleet-table", DataTable)
    labels = [str(column.label).split(" (")[0] for column in table.columns.values()]
    return [
        dict(zip(labels, (str(cell) for cell in table.get_row_at(i)), strict=True))
        for i in range(table.row_count)
    ]


async def test_fleet_shows_the_agent_and_filters(
    live_hub: LiveHub, console: Callable[..., ConsoleApp]
) -> None:
    app = console()
    async with app.run_test(size=(120, 40)) as pilot:
        await signed_in(pilot, live_hub, "admin")
        await until(pilot, lambda: rows(app))
        row = next(r for r in rows(app) if r["name"] == "edge-1")
        assert (row["zone"], row["group"], row["runtime"]) == ("ae-dxb", "lobby", "onnxruntime")
        assert (row["models"], row["health"]) == ("tiny@1", "ok")
        assert row["release"] == EDGE_RELEASE  # what its heartbeat said, not its enrolment
        assert row["last heartbeat"] != "-"  # a heartbeat arrived
        app.screen.query_one("#fleet-filter", Input).value = "no-such-agent"
        await until(pilot, lambda: not rows(app))
        assert "0 of" in text_of(app, "#fleet-status")
        app.screen.query_one("#fleet-filter", Input).value = "lobby"
        await until(pilot, lambda: rows(app))
        app.screen.query_one("#fleet-table").focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, InfoDialog))
        assert "ae-dxb / lobby" in text_of(app, "#info-body")
        await pilot.press("escape")


async def test_enrol_shows_a_one_time_token(
    live_hub: LiveHub, console: Callable[..., ConsoleApp]
) -> None:
    app = console()
    async with app.run_test(size=(80, 24)) as pilot:
        await signed_in(pilot, live_hub, "admin")
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, EnrolDialog))
        app.screen.query_one("#group", Input).value = "cashiers"
        await pilot.click("#submit")
        await until(pilot, lambda: isinstance(app.screen, InfoDialog))
        token = text_of(app, "#secret")
        assert len(token) > 20
        assert "group cashiers" in text_of(app, "#info-body")
        assert f"--hub {live_hub.url}" in text_of(app, "#info-body")


async def test_revoke_asks_then_revokes(
    live_hub: LiveHub, console: Callable[..., ConsoleApp]
) -> None:
    with live_hub.client("admin") as admin:
        enrol_agent(live_hub, admin, "edge-doomed", group="doomed", keys=live_hub.root / "keys")
    app = console()
    async with app.run_test(size=(80, 24)) as pilot:
        await signed_in(pilot, live_hub, "admin")
        app.screen.query_one("#fleet-filter", Input).value = "edge-doomed"
        await until(pilot, lambda: len(rows(app)) == 1)
        app.screen.query_one("#fleet-table").focus()
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.click("#cancel")
        await pilot.press("f5")
        await settled(pilot)
        assert rows(app)[0]["health"] == "unknown"  # still enrolled: no heartbeat yet, not revoked
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.click("#confirm")
        await until(pilot, lambda: rows(app) and rows(app)[0]["health"] == "revoked")
    with live_hub.client("admin") as admin:
        doomed = next(a for a in admin.list_agents() if a.name == "edge-doomed")
    assert doomed.revoked_at is not None


def report(kind: str, k: int, **body: object) -> AgentReport:
    return AgentReport(key=f"details-{kind}-{k}", kind=kind, body=body)


async def test_details_show_drift_latency_and_standby(
    live_hub: LiveHub, console: Callable[..., ConsoleApp]
) -> None:
    info, agent = agent_client(live_hub, "edge-details", group="details")
    with agent:
        agent.heartbeat(
            info.id,
            Heartbeat(
                models=[
                    InstalledModel(name=MODEL, version=1, runtime="onnxruntime"),
                    InstalledModel(name=MODEL, version=2, runtime="onnxruntime", state="standby"),
                ]
            ),
        )
        start = 1.75e9
        windows = [  # one drifted window, the latest: not enough for an alert
            report(
                "drift",
                k,
                model=MODEL,
                version=1,
                method="ks",
                drifted=k == 1,
                p_values=[1e-6 if k == 1 else 0.4],
                distances=[0.3],
                threshold=0.05,
                window_size=500,
                started_at=start + 60 * k,
                ended_at=start + 60 * (k + 1),
            )
            for k in range(2)
        ]
        serving = [
            report(
                "serving",
                k,
                model=MODEL,
                version=1,
                variant="",
                requests=1000,
                errors=4 * k,
                rejected=0,
                latency_mean_s=0.004,
                latency_p95_s=0.012 + 0.01 * k,
                started_at=start + 60 * k,
                ended_at=start + 60 * (k + 1),
            )
            for k in range(2)
        ]
        agent.send_reports(info.id, [*windows, *serving])
    app = console()
    async with app.run_test(size=(80, 24)) as pilot:
        await signed_in(pilot, live_hub, "sara")
        app.screen.query_one("#fleet-filter", Input).value = "edge-details"
        await until(pilot, lambda: len(rows(app)) == 1)
        app.screen.query_one("#fleet-table").focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, AgentDialog))
        await until(pilot, lambda: "p95" in text_of(app, "#info-body"))
        body = text_of(app, "#info-body")
        assert f"serving  {MODEL}@1" in body
        assert f"standby  {MODEL}@2" in body
        assert "p=1e-06 DRIFTED  (1 of 2 drifted)" in body
        assert "2,000 req · 4 err (0.2%) · p95 22 ms (worst 22 ms)" in body


async def test_export_an_update_bundle_with_progress(
    live_hub: LiveHub, console: Callable[..., ConsoleApp], tmp_path: Path
) -> None:
    app = console()
    async with app.run_test(size=(80, 24)) as pilot:
        await signed_in(pilot, live_hub, "admin")
        app.screen.query_one("#fleet-filter", Input).value = "edge-1"
        await until(pilot, lambda: len(rows(app)) == 1)
        app.screen.query_one("#fleet-table").focus()
        await pilot.press("u")
        form = await until(pilot, lambda: isinstance(app.screen, ExportDialog) and app.screen)
        assert form.query_one("#zone", Input).value == "ae-dxb"  # the selected agent's
        assert form.query_one("#group", Input).value == "lobby"
        form.query_one("#dest", Input).value = str(tmp_path / "nowhere" / "b.tar")
        await pilot.click("#submit")
        await pilot.pause(0.3)  # a button ignores presses while it shows the last one
        assert "No folder" in text_of(app, "#form-error")
        form.query_one("#dest", Input).value = str(tmp_path)
        form.query_one("#days", Input).value = "7"
        await pilot.click("#submit")

        dialog = await until(pilot, lambda: isinstance(app.screen, DownloadDialog) and app.screen)
        await until(pilot, lambda: dialog.ok is not None, timeout=30)
        assert dialog.ok, text_of(app, "#download-status")
        assert dialog.query_one(ProgressBar).percentage == 1.0
        bundle = tmp_path / "update-ae-dxb-lobby.tar"
        assert tarfile.is_tarfile(bundle)
        assert "written. Valid until" in text_of(app, "#download-status")
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, DownloadDialog))


async def test_no_export_key_without_the_permission(
    live_hub: LiveHub, console: Callable[..., ConsoleApp]
) -> None:
    app = console()
    async with app.run_test(size=(80, 24)) as pilot:
        await signed_in(pilot, live_hub, "alice")
        assert not app.screen.query_one(FleetPane).may("export")
        await pilot.press("u")
        await settled(pilot)
        assert not isinstance(app.screen, ExportDialog)
