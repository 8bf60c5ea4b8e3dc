"""The console's panes: one per area of the hub's API."""

from tui.widgets.audit import AuditPane
from tui.widgets.fleet import FleetPane
from tui.widgets.models import ModelsPane

__all__ = ["AuditPane", "FleetPane", "ModelsPane"]
