"""The console outlives its hub: a banner while it is away, fresh data when it is back."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.widgets import DataTable

from tests.tui.conftest import LiveHub, signed_in, text_of, until
from tui import ConsoleApp

pytestmark = pytest.mark.anyio


async def test_banner_while_the_hub_is_away_and_refresh_after(
    live_hub: LiveHub, console: Callable[..., ConsoleApp]
) -> None:
    app = console(refresh_s=0.3)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await signed_in(pilot, live_hub, "admin")
        table = screen.query_one("#fleet-table", DataTable)
        await until(pilot, lambda: table.row_count)
        banner = screen.query_one("#banner")
        assert not banner.has_class("shown")

        live_hub.stop()
        try:
            await until(pilot, lambda: banner.has_class("shown"))
            assert "Hub unreachable" in text_of(app, "#banner")
            table.clear()  # so that rows seen later must come from the hub once it is back
            await pilot.pause(0.5)  # the console keeps running and keeps trying
            assert app.is_running and table.row_count == 0
        finally:
            live_hub.start()  # same data directory, same port
        await until(pilot, lambda: not banner.has_class("shown"), timeout=15)
        await until(pilot, lambda: table.row_count)
        assert any("edge-1" in str(table.get_row_at(i)[1]) for i in range(table.row_count))
