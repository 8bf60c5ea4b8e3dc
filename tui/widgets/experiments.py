"""A/B experiments: verdict per experiment; the selected one's variants plotted; stop one,
or promote its declared winner (approvers: the experiment stops, the winner is approved).

The hub gives each variant's count and mean and, per comparison with the control,
the interval of the difference. The plot's per-variant intervals are worked out
here (Wilson, 95%) for rates; a mean metric has no spread in the API, so no
interval is drawn for it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.widgets import Static

from tui.format import common as fmt
from tui.format import releases as fr
from tui.messages import ActionDone, ActionFailed
from tui.records import Experiment, convert
from tui.widgets import plots
from tui.widgets.chart import Chart
from tui.widgets.listing import ListPane
from tui.widgets.table import Cell


class ExperimentsPane(ListPane[Experiment]):
    DEFAULT_CSS = """
    ExperimentsPane > RecordTable { height: auto; max-height: 35%; }
    ExperimentsPane #experiment-details { max-height: 5; }
    """
    NEEDS = "models:read"
    ACTION_NEEDS = {"stop": "models:stage", "promote": "models:approve"}
    COLUMNS = fr.EXPERIMENT_COLUMNS
    TABLE_ID = "experiments-table"
    LOADING = "loading experiments…"
    BINDINGS = [
        Binding("s", "stop", "Stop experiment"),
        Binding("w", "promote", "Promote winner"),
    ]

    def details(self) -> ComposeResult:
        yield Chart("select an experiment to plot its variants", id="experiment-chart")
        yield Static("", id="experiment-details", classes="list-details", markup=False)

    def fetch(self) -> Sequence[Experiment]:
        return convert(self.hub.list_experiments(), list[Experiment], "experiments")[::-1]

    def key(self, record: Experiment) -> str:
        return record.name

    def cells(self, record: Experiment) -> Sequence[Cell]:
        return fr.experiment_cells(record)

    def status(self) -> str:
        if not self.records:
            return "no experiments: an ML engineer defines one (POST /api/v1/experiments/)"
        running = sum(1 for e in self.records if e.status == "running")
        stop = " · s: stop" if self.may("stop") else ""
        promote = " · w: promote the winner" if self.may("promote") else ""
        return f"{len(self.records)} experiments · {running} running{stop}{promote}"

    def show(self, record: Experiment | None) -> None:
        chart = self.query_one(Chart)
        details = self.query_one("#experiment-details", Static)
        details.display = record is not None
        if record is None:
            chart.say("")
            return
        details.update(fr.experiment_details(record))
        if not any(v.count for v in record.variants):
            chart.say(f"{record.name}: no outcomes reported by agents yet")
            return
        bars = [fr.variant_bar(v, record.metric) for v in record.variants]
        chart.draw(plots.variant_rates(bars, percent=record.metric == "rate"))

    def action_stop(self) -> None:
        experiment = self.selected()
        if experiment is None:
            return
        if experiment.status != "running":
            said = f"experiment {experiment.name} is already {experiment.status}"
            self.post_message(ActionDone(said))
            return
        self.confirm(
            f"Stop experiment {experiment.name}?",
            f"Agents in {experiment.zone}/{experiment.group} stop splitting {experiment.model} "
            "traffic and serve the production version to everyone. Results so far are kept; "
            "a stopped experiment cannot be restarted.",
            "Stop experiment",
            lambda: self.act(
                lambda: convert(
                    self.hub.stop_experiment(experiment.name), Experiment, "an experiment"
                ),
                lambda done: f"experiment {done.name} {done.status}: {fr.verdict_text(done)}",
            ),
        )

    def action_promote(self) -> None:
        experiment = self.selected()
        if experiment is None:
            return
        winner = fr.winner_of(experiment)
        if winner is None:
            said = f"{experiment.name} has no winner to promote ({fr.verdict_text(experiment)})"
            self.post_message(ActionFailed(f"{said}: {experiment.detail}"))
            return
        self.confirm(
            f"Promote {winner.name}, {experiment.model} v{winner.version}?",
            f"It won {experiment.name}: {experiment.detail}. The experiment stops (agents in "
            f"{experiment.zone}/{experiment.group} serve the production version to everyone) "
            f"and your approval of v{winner.version} for production is recorded; with more "
            "approvals required it stays in staging until the other approvers agree.",
            "Promote winner",
            lambda: self.act(
                lambda: self._promote(experiment, winner.version),
                lambda done: f"experiment {experiment.name} stopped; winner {winner.name}: {done}",
            ),
        )

    def _promote(self, experiment: Experiment, version: int) -> str:
        """On the worker: promote, then read where the winner stands (the hub may want more)."""
        self.hub.promote_winner(experiment.name)
        model = self.hub.get_model(experiment.model)
        info = next((v for v in model.versions if v.version == version), None)
        return fmt.stage_outcome("production", info) if info else f"v{version} approved"

    def commands(self) -> Iterator[SystemCommand]:
        yield from self.command("Stop experiment", "The selected experiment", "stop")
        yield from self.command("Promote winner", "Of the selected experiment", "promote")
