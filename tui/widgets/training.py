"""The training tab: jobs (with the selected one's log tail) or GPU workers (with a plot)."""

from __future__ import annotations

from textual.binding import Binding

from tui.widgets.jobs import JobsPane
from tui.widgets.views import SwitchPane
from tui.widgets.workers import WorkersPane


class TrainingPane(SwitchPane):
    NEEDS = "training:read"
    VIEWS = {"jobs": ("Jobs", JobsPane), "workers": ("GPU workers", WorkersPane)}
    KEY = "w"
    BINDINGS = [
        Binding("w", "view('workers')", "Workers"),
        Binding("w", "view('jobs')", "Jobs"),
    ]
