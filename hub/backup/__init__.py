"""Backup and restore of the hub: its records, keys, artifacts, TUF metadata, features, TLS.

:func:`backup_hub` writes one tar (mode 0600: it holds the hub's private keys)
with a manifest of every file's SHA-256, size and mode, the appliance version,
the time and the audit chain's head; it is consistent while the hub runs.
:func:`restore_hub` checks all of it before writing anything, writes into a
temporary sibling of a new data directory and renames it into place, then
verifies the restored audit chain. The archive format is in
:mod:`hub.backup.manifest`.
"""

from __future__ import annotations

from hub.backup.create import BackupResult, backup_before_migrating, backup_hub
from hub.backup.database import AuditCheck
from hub.backup.errors import BackupError, BackupFormatError, BackupIntegrityError
from hub.backup.manifest import AuditHead, FileEntry, Manifest
from hub.backup.restore import RestoreResult, read_manifest, restore_hub

__all__ = [
    "AuditCheck",
    "AuditHead",
    "BackupError",
    "BackupFormatError",
    "BackupIntegrityError",
    "BackupResult",
    "FileEntry",
    "Manifest",
    "RestoreResult",
    "backup_before_migrating",
    "backup_hub",
    "read_manifest",
    "restore_hub",
]
