"""The TUF repository over HTTP (agents), publications and offline export (operators)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.background_tasks import BackgroundTask
from litestar.response import File

from hub.auth.guards import client_address, principal_of, requires
from hub.auth.roles import Permission as P
from hub.pagination import After, Limit
from hub.updates.service import PublicationInfo, UpdateService


class ExportRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    zone: str
    group: str = "default"
    days: int | None = None
    """Validity of the bundle's metadata; default the hub's offline policy (30 days)."""


class TufController(Controller):
    """What ``tuf.ngclient.Updater`` fetches: metadata by name, targets by hashed name."""

    path = "/tuf"
    tags = ["updates"]
    guards = [requires(P.MODELS_READ, P.AGENT_SELF)]

    @get("/metadata/{filename:str}", operation_id="tufMetadata", sync_to_thread=True)
    def metadata(
        self, filename: str, updates: UpdateService, request: Request[Any, Any, Any]
    ) -> File:
        path = updates.metadata_file(principal_of(request), filename)
        return File(path=path, filename=filename, media_type="application/json")

    @get("/targets/{target:path}", operation_id="tufTarget", sync_to_thread=True)
    def target(self, target: str, updates: UpdateService, request: Request[Any, Any, Any]) -> File:
        path = updates.target_file(
            principal_of(request), target.lstrip("/"), client_address(request)
        )
        return File(path=path, filename=path.name, media_type="application/octet-stream")


class UpdatesController(Controller):
    path = "/api/v1/updates"
    tags = ["updates"]

    @get(
        "/publications",
        operation_id="listPublications",
        guards=[requires(P.MODELS_READ)],
        sync_to_thread=True,
    )
    def publications(
        self, updates: UpdateService, after: After = 0, limit: Limit = 100
    ) -> list[PublicationInfo]:
        """Every signed publication, oldest first: who, why, which versions."""
        return updates.publications(after_id=after, limit=limit)

    @post(
        "/export",
        operation_id="exportOfflineBundle",
        guards=[requires(P.UPDATES_EXPORT)],
        status_code=200,
        sync_to_thread=True,
    )
    def export(
        self, data: ExportRequest, updates: UpdateService, request: Request[Any, Any, Any]
    ) -> File:
        """One group's signed metadata and targets as one tar, for removable media."""
        folder = Path(tempfile.mkdtemp(dir=updates.artifacts.root / "tmp"))
        out = folder / f"update-{data.zone}-{data.group}.tar"
        header = updates.export_offline(
            zone=data.zone,
            group=data.group,
            out=out,
            actor=principal_of(request).actor,
            days=data.days,
        )
        return File(
            path=out,
            filename=out.name,
            media_type="application/x-tar",
            headers={"X-Update-Expires": header.expires_at},
            background=BackgroundTask(_remove, folder),
        )


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
