"""Errors of backup and restore, in the appliance's one hierarchy (the CLI prints them).

::

    ApplianceError
    └── BackupError                 a backup could not be made or restored
        ├── BackupFormatError       not a hub backup: corrupted, truncated, unsafe or malformed
        └── BackupIntegrityError    a file differs from what the manifest recorded
"""

from __future__ import annotations

from appliance.errors import ApplianceError


class BackupError(ApplianceError):
    """A backup could not be made or restored; nothing half-written was left behind."""


class BackupFormatError(BackupError):
    """The archive is not a hub backup this version can read, or it is unsafe to extract."""


class BackupIntegrityError(BackupError):
    """A file in the archive is not the one the manifest recorded (changed or corrupted)."""
