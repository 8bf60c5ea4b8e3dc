"""Reading and verifying the audit log over HTTP (auditors and admins)."""

from __future__ import annotations

from litestar import Controller, get, post

from hub.audit.chain import VerifyReport
from hub.audit.schemas import AuditEntry
from hub.audit.service import AuditReader
from hub.auth.guards import requires
from hub.auth.roles import Permission
from hub.pagination import After, Limit


class AuditController(Controller):
    path = "/api/v1/audit"
    tags = ["audit"]
    guards = [requires(Permission.AUDIT_READ)]

    @get("/", operation_id="listAuditEntries", sync_to_thread=True)
    def list_entries(
        self,
        audit: AuditReader,
        after: After = 0,
        limit: Limit = 100,
        actor: str | None = None,
        action: str | None = None,
    ) -> list[AuditEntry]:
        """Entries after ``after`` (a seq), oldest first; page on with the last seq seen."""
        return audit.list(after_seq=after, limit=limit, actor=actor, action=action)

    @post("/verify", operation_id="verifyAuditLog", status_code=200, sync_to_thread=True)
    def verify(self, audit: AuditReader) -> VerifyReport:
        """Walk the whole chain and check every signed checkpoint; names the first bad entry."""
        return audit.verify()
