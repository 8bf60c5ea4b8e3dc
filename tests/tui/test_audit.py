"""Audit: entries listed and filtered by actor, paged, and the chain verified."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.widgets import DataTable, Input

from tests.tui.conftest import LiveHub, signed_in, text_of, until
from tui import ConsoleApp
from tui.widgets import AuditPane

pytestmark = pytest.mark.anyio


def column(app: ConsoleApp, index: int) -> list[str]:
    table = app.screen.query_one("#audit-table", DataTable)
    return [str(table.get_row_at(i)[index]) for i in range(table.row_count)]


async def test_audit_lists_filters_pages_and_verifies(
    live_hub: LiveHub, console: Callable[..., ConsoleApp]
) -> None:
    app = console()
    async with app.run_test(size=(120, 40)) as pilot:
        await signed_in(pilot, live_hub, "sara")
        await pilot.press("3")
        await until(pilot, lambda: column(app, 0))
        assert "agent.enrol" in column(app, 3)
        assert column(app, 0)[0] == "1"

        actor = app.screen.query_one("#audit-actor", Input)
        actor.value = "user:omar"
        actor.focus()
        await pilot.press("enter")
        await until(pilot, lambda: set(column(app, 2)) == {"user:omar"})

        actor.value = ""
        app.screen.query_one(AuditPane).page_size = 3
        actor.focus()
        await pilot.press("enter")
        await until(pilot, lambda: column(app, 0) == ["1", "2", "3"])
        await pilot.press("n")
        await until(pilot, lambda: column(app, 0) == ["4", "5", "6"])
        assert "page 2" in text_of(app, "#audit-status")
        await pilot.press("b")
        await until(pilot, lambda: column(app, 0) == ["1", "2", "3"])

        await pilot.press("v")
        await until(pilot, lambda: text_of(app, "#audit-verify").startswith("OK"))
        assert "entries" in text_of(app, "#audit-verify")
