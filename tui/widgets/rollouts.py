"""Rollouts: ring by ring, newest first, the selected one's steps; pause, resume, promote, abort.

Only approvers (``models:approve``) see the keys. Promoting (ending the ring's soak now,
gates unchecked) and aborting (every ring rolled back) ask first. The hub decides what
each state allows and says so when it refuses.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.widgets import Static

from tui.format import releases as fr
from tui.records import Rollout, convert
from tui.widgets.listing import ListPane
from tui.widgets.table import Cell

APPROVE = "models:approve"


class RolloutsPane(ListPane[Rollout]):
    DEFAULT_CSS = """
    RolloutsPane #rollout-steps { max-height: 40%; }
    """
    NEEDS = "models:read"
    ACTION_NEEDS = {"pause": APPROVE, "resume": APPROVE, "promote": APPROVE, "abort": APPROVE}
    COLUMNS = fr.ROLLOUT_COLUMNS
    TABLE_ID = "rollouts-table"
    LOADING = "loading rollouts…"
    BINDINGS = [
        Binding("p", "pause", "Pause"),
        Binding("r", "resume", "Resume"),
        Binding("n", "promote", "Promote now"),
        Binding("a", "abort", "Abort"),
    ]

    def details(self) -> ComposeResult:
        yield Static("", id="rollout-steps", classes="list-details", markup=False)

    def fetch(self) -> Sequence[Rollout]:
        return convert(self.hub.list_rollouts(), list[Rollout], "rollouts")[::-1]

    def key(self, record: Rollout) -> str:
        return str(record.id)

    def cells(self, record: Rollout) -> Sequence[Cell]:
        return fr.rollout_cells(record)

    def status(self) -> str:
        if not self.records:
            return "no rollouts: approvers start one on a staging version (POST /api/v1/rollouts/)"
        active = sum(1 for r in self.records if r.state in ("running", "paused"))
        keys = " · p/r/n/a: pause, resume, promote, abort" if self.may("pause") else ""
        return f"{len(self.records)} rollouts · {active} active{keys}"

    def show(self, record: Rollout | None) -> None:
        steps = self.query_one("#rollout-steps", Static)
        steps.display = record is not None
        if record is not None:
            steps.update(fr.rollout_steps(record))

    # -- actions ---------------------------------------------------------------------

    def _act(self, action: str) -> None:
        rollout = self.selected()
        if rollout is not None:
            self.act(
                lambda: convert(self.hub.act_on_rollout(rollout.id, action), Rollout, "a rollout"),
                lambda done: (
                    f"rollout {done.id} ({done.model} v{done.version}): {done.state}, "
                    f"ring {done.ring} of {done.rings_total}"
                ),
            )

    def action_pause(self) -> None:
        self._act("pause")

    def action_resume(self) -> None:
        self._act("resume")

    def action_promote(self) -> None:
        rollout = self.selected()
        if rollout is None:
            return
        self.confirm(
            f"Promote rollout {rollout.id} now?",
            fr.promote_text(rollout),
            "Promote now",
            lambda: self._act("promote"),
        )

    def action_abort(self) -> None:
        rollout = self.selected()
        if rollout is None:
            return
        self.confirm(
            f"Abort rollout {rollout.id}?",
            f"{rollout.model} v{rollout.version} leaves every ring at once: the "
            f"{len(rollout.agents_reached)} agents reached in {rollout.zone}/{rollout.group} go "
            "back to the production version. The rollout cannot be resumed.",
            "Abort rollout",
            lambda: self._act("abort"),
        )

    def commands(self) -> Iterator[SystemCommand]:
        yield from self.command("Pause rollout", "The selected rollout", "pause")
        yield from self.command("Resume rollout", "The selected rollout", "resume")
        yield from self.command("Promote rollout", "End the selected ring's soak now", "promote")
        yield from self.command("Abort rollout", "Roll the selected rollout back", "abort")
