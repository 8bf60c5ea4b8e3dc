"""The rollouts & A/B tab: canary rollouts, or experiments with their variants plotted."""

from __future__ import annotations

from textual.binding import Binding

from tui.widgets.experiments import ExperimentsPane
from tui.widgets.rollouts import RolloutsPane
from tui.widgets.views import SwitchPane


class ReleasesPane(SwitchPane):
    NEEDS = "models:read"
    VIEWS = {
        "rollouts": ("Rollouts", RolloutsPane),
        "experiments": ("A/B experiments", ExperimentsPane),
    }
    KEY = "e"
    BINDINGS = [
        Binding("e", "view('experiments')", "Experiments"),
        Binding("e", "view('rollouts')", "Rollouts"),
    ]
