"""Modal dialogs: confirmations for anything destructive, small forms, a download."""

from tui.dialogs.agent import AgentDialog
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.download import DownloadDialog
from tui.dialogs.enrol import EnrolDialog, EnrolRequest
from tui.dialogs.export import ExportDialog, ExportRequest
from tui.dialogs.info import InfoDialog
from tui.dialogs.rollout import RolloutDialog

__all__ = [
    "AgentDialog",
    "ConfirmDialog",
    "DownloadDialog",
    "EnrolDialog",
    "EnrolRequest",
    "ExportDialog",
    "ExportRequest",
    "InfoDialog",
    "RolloutDialog",
]
