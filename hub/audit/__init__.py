"""The hub's tamper-evident audit log: hash-chained entries, signed checkpoints, offline checks.

Append in the caller's transaction with :meth:`AuditLog.append`; sign
checkpoints on a schedule with :func:`start_checkpoint_scheduler`; verify with
:func:`verify_chain` (pure) or :meth:`AuditLog.verify`; hand auditors an export
(:func:`export_log`) they check with only the hub's public key.
"""

from __future__ import annotations

from hub.audit.chain import VerifyReport, verify_chain
from hub.audit.errors import AuditError, AuditFormatError, AuditTamperedError
from hub.audit.export import (
    checkpoints_path,
    export_log,
    read_checkpoints,
    read_entries,
    write_export,
)
from hub.audit.scheduler import run_checkpoint, start_checkpoint_scheduler
from hub.audit.schemas import GENESIS_HASH, OUTCOMES, AuditEntry, Checkpoint, Outcome
from hub.audit.service import AuditLog

__all__ = [
    "GENESIS_HASH",
    "OUTCOMES",
    "AuditEntry",
    "AuditError",
    "AuditFormatError",
    "AuditLog",
    "AuditTamperedError",
    "Checkpoint",
    "Outcome",
    "VerifyReport",
    "checkpoints_path",
    "export_log",
    "read_checkpoints",
    "read_entries",
    "run_checkpoint",
    "start_checkpoint_scheduler",
    "verify_chain",
    "write_export",
]
