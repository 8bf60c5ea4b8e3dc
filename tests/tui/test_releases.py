"""Rollouts and A/B experiments: nothing listed cleanly at first; then act on one of each.

Both use their own model (``canary``, two versions) in the ``lobby`` group, so the
other tests' ``tiny`` versions and stages stay as they were.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from textual.widgets import DataTable

from tests.harness.models import make_tiny_onnx
from tests.tui.conftest import (
    LiveHub,
    cleared_for_traffic,
    column_of,
    confirm,
    signed_in,
    text_of,
    until,
)
from tui import ConsoleApp
from tui.widgets.chart import Chart
from tui.widgets.rollouts import RolloutsPane

pytestmark = pytest.mark.anyio
CANARY = "canary"


@pytest.fixture(scope="module")
def canary(live_hub: LiveHub) -> Iterator[None]:
    """Two versions of ``canary`` in staging (a rollout takes a staging version), both cleared
    for live traffic."""
    with live_hub.client("alice") as alice:
        first = alice.upload_model(CANARY, make_tiny_onnx(), metrics={"accuracy": 0.9})
        alice.upload_model(CANARY, make_tiny_onnx(), metrics={"accuracy": 0.91})
        alice.change_stage(CANARY, first.version, "staging")
        alice.change_stage(CANARY, first.version + 1, "staging")
    cleared_for_traffic(live_hub, CANARY, first.version, first.version + 1)
    yield


def state_of(app: ConsoleApp, table_id: str, key: str) -> str | None:
    """The state (or status) column of the row keyed ``key``, with the cursor put on it."""
    return column_of(app, table_id, key, 3 if table_id == "rollouts-table" else 2)


async def test_rollouts_none_then_pause_resume_and_abort(
    live_hub: LiveHub, console: Callable[..., ConsoleApp], canary: None
) -> None:
    app = console()
    async with app.run_test(size=(80, 24)) as pilot:
        await signed_in(pilot, live_hub, "omar")
        await pilot.press("5")
        await until(pilot, lambda: "no rollouts" in text_of(app, "#rollouts-pane .list-status"))
        assert app.screen.query_one("#rollouts-table", DataTable).row_count == 0

        with live_hub.client("omar") as omar:
            started = omar.start_rollout(
                {"model": CANARY, "version": 1, "zone": "ae-dxb", "group": "lobby", "soak_s": 3600}
            )
        key = str(started["id"])
        await pilot.press("f5")
        assert await until(pilot, lambda: state_of(app, "rollouts-table", key)) == "running"
        assert "ring 1 of 3" in text_of(app, "#rollout-steps")
        app.screen.query_one("#rollouts-table").focus()

        await pilot.press("p")
        await until(pilot, lambda: state_of(app, "rollouts-table", key) == "paused")
        await pilot.press("r")
        await until(pilot, lambda: state_of(app, "rollouts-table", key) == "running")
        await confirm(pilot, "a")
        await until(pilot, lambda: state_of(app, "rollouts-table", key) == "aborted")
        assert "abort" in text_of(app, "#rollout-steps")
    with live_hub.client("omar") as omar:
        assert omar.rollout(started["id"])["state"] == "aborted"


async def test_experiments_none_then_stopped(
    live_hub: LiveHub, console: Callable[..., ConsoleApp], canary: None
) -> None:
    app = console()
    async with app.run_test(size=(80, 24)) as pilot:
        await signed_in(pilot, live_hub, "alice")
        await pilot.press("5", "e")
        await until(
            pilot, lambda: "no experiments" in text_of(app, "#experiments-pane .list-status")
        )
        assert not app.screen.query_one(RolloutsPane).may("abort")  # an engineer: no rollout keys

        with live_hub.client("alice") as alice:
            alice.create_experiment(
                {
                    "name": "canary-ab",
                    "model": CANARY,
                    "zone": "ae-dxb",
                    "group": "lobby",
                    "variants": [
                        {"name": "a", "version": 1, "weight": 0.5},
                        {"name": "b", "version": 2, "weight": 0.5},
                    ],
                }
            )
        await pilot.press("f5")
        assert await until(pilot, lambda: state_of(app, "experiments-table", "canary-ab")) == (
            "running"
        )
        chart = app.screen.query_one("#experiment-chart", Chart)
        await until(pilot, lambda: "no outcomes reported" in chart.note)
        assert "collecting" in text_of(app, "#experiment-details")
        app.screen.query_one("#experiments-table").focus()

        await confirm(pilot, "s")
        await until(pilot, lambda: state_of(app, "experiments-table", "canary-ab") == "stopped")
