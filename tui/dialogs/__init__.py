"""Modal dialogs: confirmations for anything destructive, and small forms."""

from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.enrol import EnrolDialog, EnrolRequest
from tui.dialogs.info import InfoDialog

__all__ = ["ConfirmDialog", "EnrolDialog", "EnrolRequest", "InfoDialog"]
