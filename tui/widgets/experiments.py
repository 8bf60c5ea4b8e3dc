"""A/B experiments: verdict per experiment; the selected one's variants plotted; stop one.

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

from tui import format_releases as fr
from tui.messages import ActionDone
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
    ACTION_NEEDS = {"stop": "models:stage"}
    COLUMNS = fr.EXPERIMENT_COLUMNS
    TABLE_ID = "experiments-table"
    LOADING = "loading experiments…"
    BINDINGS = [Binding("s", "stop", "Stop experiment")]

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
        stop = " · s: stop the selected one" if self.may("stop") else ""
        return f"{len(self.records)} experiments · {running} running{stop}"

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

    def commands(self) -> Iterator[SystemCommand]:
        yield from self.command("Stop experiment", "The selected experiment", "stop")
