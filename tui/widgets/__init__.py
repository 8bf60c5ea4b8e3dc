"""The console's panes: one per area of the hub's API."""

from tui.widgets.audit import AuditPane
from tui.widgets.drift import DriftPane
from tui.widgets.fleet import FleetPane
from tui.widgets.models import ModelsPane
from tui.widgets.releases import ReleasesPane
from tui.widgets.training import TrainingPane

__all__ = ["AuditPane", "DriftPane", "FleetPane", "ModelsPane", "ReleasesPane", "TrainingPane"]
