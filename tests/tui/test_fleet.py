"""Fleet: the enrolled agent shows with what it runs; filter, details, enrol, revoke."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.widgets import DataTable, Input

from tests.tui.conftest import LiveHub, enrol_agent, signed_in, text_of, until
from tui import ConsoleApp
from tui.dialogs import ConfirmDialog, EnrolDialog, InfoDialog

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
        await pilot.click("#create")
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
        await pilot.pause(0.3)
        assert rows(app)[0]["health"] == "unknown"  # still enrolled: no heartbeat yet, not revoked
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.click("#confirm")
        await until(pilot, lambda: rows(app) and rows(app)[0]["health"] == "revoked")
    with live_hub.client("admin") as admin:
        doomed = next(a for a in admin.list_agents() if a.name == "edge-doomed")
    assert doomed.revoked_at is not None
