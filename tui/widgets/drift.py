"""Drift: alerts (open ones stand out), and the selected series' p-values over time.

A series is one model on one agent; its drift windows are followed a page at a
time (see :mod:`tui.widgets.follow`). Alerts name agents by id; the pane reads the
fleet's names to show them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Static

from tui.format import drift as fd
from tui.records import DriftAlert, DriftReport, convert
from tui.widgets import plots
from tui.widgets.chart import Chart
from tui.widgets.follow import FollowPane
from tui.widgets.table import Cell


class DriftPane(FollowPane[DriftAlert, DriftReport]):
    DEFAULT_CSS = """
    DriftPane > RecordTable { height: auto; max-height: 35%; }
    """
    NEEDS = "agents:read"
    COLUMNS = fd.ALERT_COLUMNS
    TABLE_ID = "drift-table"
    LOADING = "loading drift alerts…"
    PAGE = 100
    KEEP = fd.KEEP
    BINDINGS = [Binding("o", "open_only", "Open only / all")]

    open_only = False
    names: Mapping[int, str] = {}
    """Agent id -> name (alerts carry ids only); replaced whole on each read."""

    class NamesLoaded(Message):
        def __init__(self, names: dict[int, str]) -> None:
            super().__init__()
            self.names = names

    def details(self) -> ComposeResult:
        yield Static("", id="drift-summary", classes="list-details", markup=False)
        yield Chart("select an alert to plot its model's drift on that agent", id="drift-chart")

    def fetch(self) -> Sequence[DriftAlert]:
        alerts = self.hub.drift_alerts(open_only=self.open_only)
        return convert(alerts, list[DriftAlert], "drift alerts")

    def key(self, record: DriftAlert) -> str:
        return str(record.id)

    def cells(self, record: DriftAlert) -> Sequence[Cell]:
        return fd.alert_cells(record, self.names)

    def status(self) -> str:
        which = "open drift alerts" if self.open_only else "drift alerts"
        if not self.records:
            return f"no {which}: agents' drift windows all pass · o: open only / all"
        still = sum(1 for a in self.records if a.is_open)
        return f"{len(self.records)} {which} · {still} open · o: open only / all"

    # -- agent names -------------------------------------------------------------------

    def refresh_data(self) -> None:
        super().refresh_data()
        self.load_names()

    @work(thread=True, exclusive=True, group="drift-names")
    def load_names(self) -> None:
        agents = self.call_hub(self.hub.list_agents)
        if agents is not None:
            self.post_message(self.NamesLoaded({a.id: a.name for a in agents}))

    def on_drift_pane_names_loaded(self, message: NamesLoaded) -> None:
        if message.names != self.names:
            self.names = message.names
            self.table.refill((self.key(r), self.cells(r)) for r in self.records)
            alert = self.selected()
            if alert is not None:
                self.show_followed(alert, self.histories.get(self.follow_key(alert)))

    # -- the selected series -----------------------------------------------------------

    def follow_key(self, record: DriftAlert) -> str:
        return fd.series_key(record.agent_id, record.model)

    def position(self, item: DriftReport) -> int:
        return item.id

    def page(self, record: DriftAlert, after: int) -> Sequence[DriftReport]:
        found = self.hub.drift_reports(agent_id=record.agent_id, model=record.model, after=after)
        return convert(found, list[DriftReport], "drift reports")

    def show_followed(self, record: DriftAlert | None, items: Sequence[DriftReport] | None) -> None:
        summary = self.query_one("#drift-summary", Static)
        chart = self.query_one(Chart)
        summary.display = record is not None
        if record is None:
            chart.say("")
            return
        agent = fd.agent_label(record.agent_id, self.names)
        summary.update(fd.drift_summary(record, items or [], agent))
        drawn = fd.p_series(items or [])
        if drawn is not None:
            chart.draw(plots.p_values(drawn))
        elif items is None:
            chart.say(f"{record.model} on {agent}: reading its drift windows…")
        else:
            chart.say(f"{record.model} on {agent}: the hub holds no drift windows for it")

    def action_open_only(self) -> None:
        self.open_only = not self.open_only
        self.refresh_data()

    def commands(self) -> Iterator[SystemCommand]:
        yield SystemCommand(
            "Drift: open alerts only / all", "Toggle the drift alerts filter", self.action_open_only
        )
