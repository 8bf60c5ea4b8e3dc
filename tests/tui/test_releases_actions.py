"""Starting a rollout from the Models tab, promoting it, and promoting an A/B winner.

The rollout takes a fresh staging version of ``tiny`` (the Models tests own v1 and v2)
to the ``lobby`` group, ``edge-1`` first, and is aborted through the console at the
end; the version is archived afterwards. The A/B tests use their own model ``ab``.
Named to run after ``test_releases.py``, whose first looks expect no rollouts and no
experiments yet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from textual.widgets import DataTable, Input, TabbedContent

from appliance.wire.fleet import AgentReport
from tests.harness.models import make_tiny_onnx
from tests.tui.conftest import (
    MODEL,
    LiveHub,
    agent_client,
    cleared_for_traffic,
    column_of,
    confirm,
    notifications,
    signed_in,
    text_of,
    until,
)
from tui import ConsoleApp
from tui.dialogs import ConfirmDialog, RolloutDialog
from tui.widgets.table import RecordTable

pytestmark = pytest.mark.anyio
AB = "ab"


@pytest.fixture
def staged(live_hub: LiveHub) -> Iterator[int]:
    """A new version of ``tiny`` in staging; archived afterwards."""
    with live_hub.client("alice") as alice:
        version = alice.upload_model(MODEL, make_tiny_onnx(), metrics={"accuracy": 0.95}).version
        alice.change_stage(MODEL, version, "staging")
    cleared_for_traffic(live_hub, MODEL, version)
    yield version
    with live_hub.client("alice") as alice:
        alice.change_stage(MODEL, version, "archived")


def select_version(app: ConsoleApp, version: int) -> bool:
    table = app.screen.query_one("#models-table", DataTable)
    for i in range(table.row_count):
        name, number, stage = (str(cell) for cell in table.get_row_at(i)[:3])
        if (name, number, stage) == (MODEL, str(version), "staging"):
            table.move_cursor(row=i)
            table.focus()
            return True
    return False


def rollout_row(app: ConsoleApp, key: str) -> tuple[str | None, str | None]:
    """(state, ring) of the rollout keyed ``key`` as the Rollouts view shows it."""
    return column_of(app, "rollouts-table", key, 3), column_of(app, "rollouts-table", key, 4)


async def test_start_a_rollout_promote_it_then_abort(
    live_hub: LiveHub, console: Callable[..., ConsoleApp], staged: int
) -> None:
    app = console()
    async with app.run_test(size=(80, 24)) as pilot:
        await signed_in(pilot, live_hub, "omar")
        await pilot.press("2")
        await until(pilot, lambda: select_version(app, staged))
        await pilot.press("o")
        dialog = await until(pilot, lambda: isinstance(app.screen, RolloutDialog) and app.screen)
        assert dialog.query_one("#zone", Input).value == "ae-dxb"  # where the fleet's agents are
        assert "lobby 1" in text_of(app, ".hint")
        for field, value in {"group": "lobby", "rings": "50,25", "first": "edge-1"}.items():
            dialog.query_one(f"#{field}", Input).value = value
        dialog.query_one("#soak", Input).value = "3600"
        await pilot.click("#submit")
        await pilot.pause(0.3)  # a button ignores presses while it shows the last one
        assert "increasing percentages ending at 100" in text_of(app, "#form-error")
        dialog.query_one("#rings", Input).value = "50,100"
        await pilot.click("#submit")

        said = await until(pilot, lambda: "started" in notifications(app) and notifications(app))
        assert f"{MODEL} " in said and "edge-1 > 50% > 100%" in said
        with live_hub.client("omar") as omar:
            started = next(
                r
                for r in omar.list_rollouts()
                if (r["model"], r["version"], r["state"]) == (MODEL, staged, "running")
            )
        assert (started["zone"], started["group"], started["strategy"]) == (
            "ae-dxb",
            "lobby",
            "canary",
        )
        assert (started["rings"], started["first_agents"], started["soak_s"]) == (
            [0.5, 1.0],
            ["edge-1"],
            3600.0,
        )
        key = str(started["id"])
        table = app.screen.query_one("#rollouts-table", RecordTable)  # shown, on the new one
        await until(pilot, lambda: table.selected == key)
        assert app.screen.query_one(TabbedContent).active == "releases"
        assert rollout_row(app, key) == ("running", "1/3")

        await confirm(pilot, "n")  # promote: the first ring's soak ends now
        await until(pilot, lambda: rollout_row(app, key) == ("running", "2/3"))
        assert "advance" in text_of(app, "#rollout-steps")
        await confirm(pilot, "a")
        await until(pilot, lambda: rollout_row(app, key)[0] == "aborted")
    with live_hub.client("omar") as omar:
        assert omar.rollout(started["id"])["state"] == "aborted"


def outcomes(experiment: str, variant: str, successes: int) -> AgentReport:
    body = {"experiment": experiment, "variant": variant, "count": 400, "total": successes}
    return AgentReport(key=f"ab-{experiment}-{variant}", kind="ab", body=body)


@pytest.fixture
def experiments(live_hub: LiveHub) -> Iterator[None]:
    """``ab-collecting`` (no outcomes yet) and ``ab-won`` (b won, but b was archived since)."""
    with live_hub.client("alice") as alice:
        first = alice.upload_model(AB, make_tiny_onnx(), metrics={"accuracy": 0.9})
        alice.upload_model(AB, make_tiny_onnx(), metrics={"accuracy": 0.92})
        alice.change_stage(AB, first.version, "staging")
        alice.change_stage(AB, first.version + 1, "staging")
    cleared_for_traffic(live_hub, AB, first.version, first.version + 1)
    with live_hub.client("alice") as alice:
        for name in ("ab-won", "ab-collecting"):
            alice.create_experiment(
                {
                    "name": name,
                    "model": AB,
                    "zone": "ae-dxb",
                    "group": name,
                    "min_samples": 100,
                    "variants": [
                        {"name": "a", "version": first.version, "weight": 0.5},
                        {"name": "b", "version": first.version + 1, "weight": 0.5},
                    ],
                }
            )
        alice.change_stage(AB, first.version + 1, "archived")  # b leaves traffic after all
    info, agent = agent_client(live_hub, "edge-ab", group="ab-won")
    with agent:
        agent.send_reports(info.id, [outcomes("ab-won", "a", 40), outcomes("ab-won", "b", 200)])
    yield
    with live_hub.client("alice") as alice:
        for name in ("ab-won", "ab-collecting"):
            alice.stop_experiment(name)


async def promote(pilot: Any, name: str) -> None:
    app = pilot.app
    await until(pilot, lambda: column_of(app, "experiments-table", name, 0))
    app.screen.query_one("#experiments-table").focus()
    await pilot.press("w")


async def test_promote_winner_says_why_the_hub_refuses(
    live_hub: LiveHub, console: Callable[..., ConsoleApp], experiments: None
) -> None:
    app = console()
    async with app.run_test(size=(80, 24)) as pilot:
        await signed_in(pilot, live_hub, "fatima")
        await pilot.press("5", "e")
        await promote(pilot, "ab-collecting")
        said = await until(pilot, lambda: notifications(app))
        assert "ab-collecting has no winner to promote (collecting)" in said
        assert not isinstance(app.screen, ConfirmDialog)  # nothing to ask

        await promote(pilot, "ab-won")
        dialog = await until(pilot, lambda: isinstance(app.screen, ConfirmDialog) and app.screen)
        assert f"Promote b, {AB} v2?" in dialog.title_text
        await pilot.click("#confirm")
        said = await until(pilot, lambda: "409" in notifications(app) and notifications(app))
        assert f"the winner, {AB} v2, is archived" in said  # the hub's own words
    with live_hub.client("fatima") as fatima:
        assert fatima.experiment("ab-won")["status"] == "running"  # refused: nothing changed
