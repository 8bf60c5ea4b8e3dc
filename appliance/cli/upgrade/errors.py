"""What an upgrade refuses or fails with."""

from __future__ import annotations

from appliance.errors import ApplianceError


class UpgradeError(ApplianceError):
    """The upgrade cannot go on (nothing changed yet, or it was rolled back)."""


class RollbackError(UpgradeError):
    """Rolling back failed too: the host needs a person; the message says what is where."""
