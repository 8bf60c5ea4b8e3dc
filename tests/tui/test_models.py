"""Models: versions with stage and metrics; promote, then approve with confirmation (202, 200)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.widgets import DataTable

from tests.tui.conftest import MODEL, LiveHub, notifications, settled, signed_in, text_of, until
from tui import ConsoleApp
from tui.dialogs import ConfirmDialog

pytestmark = pytest.mark.anyio


def stage_of(app: ConsoleApp, version: int) -> str | None:
    table = app.screen.query_one("#models-table", DataTable)
    for i in range(table.row_count):
        row = [str(cell) for cell in table.get_row_at(i)]
        if row[0] == MODEL and row[1] == str(version):
            return row[2]
    return None


async def select(pilot: object, app: ConsoleApp, version: int) -> None:
    table = app.screen.query_one("#models-table", DataTable)
    for i in range(table.row_count):
        if str(table.get_row_at(i)[1]) == str(version):
            table.move_cursor(row=i)
    table.focus()


async def test_models_lists_versions_with_details(
    live_hub: LiveHub, console: Callable[..., ConsoleApp]
) -> None:
    app = console()
    async with app.run_test(size=(80, 24)) as pilot:
        await signed_in(pilot, live_hub, "sara")
        await pilot.press("2")
        await until(pilot, lambda: stage_of(app, 1) == "production")
        await select(pilot, app, 1)
        await pilot.pause()
        details = text_of(app, "#model-details")
        assert "accuracy=0.91" in details
        assert "source=tiny.onnx" in details
        assert "user:omar, user:fatima" in details
        await pilot.press("a")  # an auditor may not approve: the key does nothing
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmDialog)
        pane = app.screen.query_one("#models-pane")
        assert pane.check_action("approve", ()) is False


async def test_promote_then_approve_with_confirmation(
    live_hub: LiveHub, console: Callable[..., ConsoleApp]
) -> None:
    app = console()
    async with app.run_test(size=(80, 24)) as pilot:  # the engineer promotes v2 to staging
        await signed_in(pilot, live_hub, "alice")
        await pilot.press("2")
        await until(pilot, lambda: stage_of(app, 2) == "candidate")
        await select(pilot, app, 2)
        await pilot.press("p")
        await until(pilot, lambda: stage_of(app, 2) == "staging")

    said = await approve_as(live_hub, console, "omar", say_no_first=True)
    assert "approval recorded, 1" in said  # the hub answered 202: one more approver needed
    said = await approve_as(live_hub, console, "fatima")
    assert "is now in production" in said


async def approve_as(
    live_hub: LiveHub,
    console: Callable[..., ConsoleApp],
    approver: str,
    *,
    say_no_first: bool = False,
) -> str:
    """Approve v2 of the model as ``approver``; return what the console said."""
    app = console()
    async with app.run_test(size=(80, 24)) as pilot:
        await signed_in(pilot, live_hub, approver)
        await pilot.press("2")
        await until(pilot, lambda: stage_of(app, 2) == "staging")
        await select(pilot, app, 2)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        if say_no_first:  # nothing changes on a no
            await pilot.click("#cancel")
            await settled(pilot)
            assert not notifications(app)
            await pilot.press("a")
            await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.click("#confirm")
        await until(pilot, lambda: notifications(app))
        said = notifications(app)
        if "now in production" in said:
            await until(pilot, lambda: stage_of(app, 2) == "production")
            assert stage_of(app, 1) == "archived"
    return said
