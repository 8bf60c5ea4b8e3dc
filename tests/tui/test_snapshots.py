"""Layout of the main screens at 80x24 and 120x40, and of the dialogs at 80x24, over a hub
with fixed answers.

Fixed data (tests/tui/fixed_hub.py), no clock on screen, and the app never
refreshes by itself, so the SVGs are the same on every run. Regenerate with
``pytest tests/tui/test_snapshots.py --snapshot-update`` and review the diff.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from tests.tui.conftest import header_text, settled, until
from tests.tui.fixed_hub import PASSWORD, fixed_app

SIZES = [(80, 24), (120, 40)]


async def _signed_in(pilot: Pilot[Any]) -> None:
    pilot.app.screen.query_one("#password", Input).value = PASSWORD
    await pilot.press("enter")
    await until(pilot, lambda: header_text(pilot.app))
    await settled(pilot)


async def _still(pilot: Pilot[Any]) -> None:
    """Settle, with the focused input's cursor still: it blinks every half second, and on a
    loaded machine a blink fell between the last look and the snapshot (stressed run)."""
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False  # the cursor stays shown, as the snapshots have it
    await settled(pilot)


def _on_tab(key: str, *then: str) -> Any:
    async def run_before(pilot: Pilot[Any]) -> None:
        await _signed_in(pilot)
        await pilot.press(key, *then)
        await settled(pilot)  # a selection's own fetch (a log tail, drift windows) comes second
        await _still(pilot)

    return run_before


async def _sign_in_form(pilot: Pilot[Any]) -> None:
    await settled(pilot)
    await _still(pilot)


SCREENS = {
    "sign_in": _sign_in_form,
    "fleet": _on_tab("1"),
    "models": _on_tab("2"),
    "audit": _on_tab("3", "v"),
    "training": _on_tab("4"),
    "workers": _on_tab("4", "w"),
    "rollouts": _on_tab("5"),
    "experiments": _on_tab("5", "e"),
    "drift": _on_tab("6"),
}


DIALOGS = {
    "agent_details": _on_tab("1", "down", "enter"),
    "enrol_form": _on_tab("1", "e"),
    "export_form": _on_tab("1", "u"),
    "rollout_form": _on_tab("2", "o"),
    "promote_rollout": _on_tab("5", "n"),
    "promote_winner": _on_tab("5", "e", "w"),
}
"""Each over the screen it is opened from; 80x24 only (a dialog is smaller than the screen)."""


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen(snap_compare: Any, screen: str, size: tuple[int, int]) -> None:
    assert snap_compare(fixed_app(), terminal_size=size, run_before=SCREENS[screen])


@pytest.mark.parametrize("dialog", list(DIALOGS))
def test_dialog(snap_compare: Any, dialog: str) -> None:
    assert snap_compare(fixed_app(), terminal_size=SIZES[0], run_before=DIALOGS[dialog])
