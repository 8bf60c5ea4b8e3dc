"""Errors of the audit log, rooted in the appliance's one hierarchy.

::

    ApplianceError
    └── AuditError                  the audit log cannot do what was asked
        ├── AuditTamperedError      the chain or its checkpoints do not verify
        └── AuditFormatError        an export file is malformed (cannot even be checked)

Invalid arguments to :meth:`hub.audit.AuditLog.append` raise the shared
:class:`appliance.errors.InvalidInputError`: they are the caller's bug, not
evidence about the log.
"""

from __future__ import annotations

from appliance.errors import ApplianceError


class AuditError(ApplianceError):
    """The audit log cannot do what was asked."""


class AuditTamperedError(AuditError):
    """The chain or its checkpoints do not verify; nothing is signed over them."""

    def __init__(self, message: str, *, first_bad_seq: int | None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.first_bad_seq = first_bad_seq


class AuditFormatError(AuditError):
    """An export file is malformed: a line is not JSON or lacks a field."""
