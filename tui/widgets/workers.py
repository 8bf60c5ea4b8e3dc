"""GPU workers: state, job and latest GPU figures; the selected one's recent history plotted."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult

from appliance.wire.training import WorkerInfo
from tui.format import training as ft
from tui.widgets import plots
from tui.widgets.chart import Chart
from tui.widgets.listing import ListPane
from tui.widgets.table import Cell


class WorkersPane(ListPane[WorkerInfo]):
    DEFAULT_CSS = """
    WorkersPane > RecordTable { height: auto; max-height: 40%; }
    """
    NEEDS = "training:read"
    COLUMNS = ft.WORKER_COLUMNS
    TABLE_ID = "workers-table"
    LOADING = "loading training workers…"

    def details(self) -> ComposeResult:
        yield Chart("select a worker to plot its GPUs", id="worker-chart")

    def fetch(self) -> Sequence[WorkerInfo]:
        return self.hub.training_workers()

    def key(self, record: WorkerInfo) -> str:
        return record.name

    def cells(self, record: WorkerInfo) -> Sequence[Cell]:
        return ft.worker_cells(record)

    def status(self) -> str:
        if not self.records:
            return "no training workers have called in: start one with 'appliance worker'"
        counts = {s: sum(1 for w in self.records if w.state == s) for s in ("busy", "idle", "lost")}
        return " · ".join(f"{n} {state}" for state, n in counts.items())

    def show(self, record: WorkerInfo | None) -> None:
        chart = self.query_one(Chart)
        if record is None:
            chart.say("")
            return
        series = ft.gpu_history(record)
        note = ft.worker_note(record)
        if note is not None or series is None:
            chart.say(note or f"{record.name}: no GPU readings yet")
        else:
            chart.draw(plots.gpu_history(record.name, series))
