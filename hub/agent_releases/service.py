"""The agent releases the hub holds, for agents to upgrade to.

An admin uploads ``appliance-agent-<version>.tar`` as the build made it. The hub keeps it
only when its ``SHA256SUMS`` is signed by the release key the site pinned
(``APPLIANCE_RELEASE_KEY``) and every file matches, and its manifest says it is an agent
release: the same check the playbooks and ``appliance upgrade`` make, so nothing the hub
hands agents can be other than what the release key signed (agents check again before
installing). A refused archive is audited and leaves nothing behind.

The archive is written beside the others (``<data>/agent-releases/``) under a temporary
name, checked there, then renamed; its record is written last, so a crash mid-upload
leaves a stray temporary file at worst, removed at the next upload. One version holds
one build: the same build again is a no-op, another build of a held version is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import tarfile
import tempfile
import time
from pathlib import Path
from typing import IO

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from appliance.clock import iso_utc
from appliance.errors import ConflictError, NotFoundError, UnprocessableInputError
from appliance.fsutil import save_stream
from appliance.security.release_archives import (
    ArchiveRefused,
    VerifiedArchive,
    load_public_key,
    verify_archive,
)
from appliance.wire.fleet import AgentReleaseInfo
from hub.agent_releases.records import AgentReleaseRecord
from hub.audit.service import AuditLog
from hub.auth.principal import Principal
from hub.db import session_scope

FOLDER = "agent-releases"
STRAY_AFTER_S = 24 * 3600.0


def _info(record: AgentReleaseRecord) -> AgentReleaseInfo:
    return AgentReleaseInfo(
        version=record.version,
        name=record.name,
        sums_sha256=record.sums_sha256,
        archive_sha256=record.archive_sha256,
        size=record.size,
        key_id=record.key_id,
        uploaded_by=record.uploaded_by,
        uploaded_at=iso_utc(record.uploaded_at),
    )


class AgentReleases:
    def __init__(
        self, engine: Engine, audit: AuditLog, folder: Path, release_key: Path | None
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.folder = folder
        self.release_key = release_key

    def upload(self, stream: IO[bytes], by: Principal) -> AgentReleaseInfo:
        """Keep the archive in ``stream`` if the release key signed it; its record."""
        if self.release_key is None:
            raise ConflictError(
                "this hub has no pinned release key, so it takes no agent release",
                hint="set APPLIANCE_RELEASE_KEY to the release public key (PEM) the site "
                "pinned (the playbooks copy it to /etc/appliance/trust/release.pub)",
            )
        public = load_public_key(self.release_key)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._remove_strays()
        handle, name = tempfile.mkstemp(dir=self.folder, prefix=".incoming-", suffix=".tar")
        os.close(handle)
        incoming = Path(name)
        try:
            archive_sha256, size = save_stream(stream, incoming)
            try:
                checked = verify_archive(incoming, public)
                version = _agent_version(incoming, checked)
            except ArchiveRefused as exc:
                self._refused(by, str(exc))
                raise UnprocessableInputError(
                    f"refused the agent release: {exc}",
                    hint="upload the appliance-agent-<version>.tar the release build made, "
                    "signed with the site's release key",
                ) from exc
            return self._keep(incoming, checked, version, archive_sha256, size, by)
        finally:
            incoming.unlink(missing_ok=True)

    def _keep(
        self,
        incoming: Path,
        checked: VerifiedArchive,
        version: str,
        archive_sha256: str,
        size: int,
        by: Principal,
    ) -> AgentReleaseInfo:
        with session_scope(self.engine) as session:
            held = session.exec(
                select(AgentReleaseRecord).where(AgentReleaseRecord.version == version)
            ).first()
            if held is not None:
                if held.sums_sha256 == checked.sums_sha256:
                    return _info(held)
                raise ConflictError(
                    f"agent release {version} is held already, from another build "
                    f"({held.sums_sha256[:12]}, not {checked.sums_sha256[:12]})",
                    hint="a version names one build: release the change as a new version",
                )
            incoming.rename(self.path(version))
            record = AgentReleaseRecord(
                version=version,
                name=checked.top,
                sums_sha256=checked.sums_sha256,
                archive_sha256=archive_sha256,
                size=size,
                key_id=checked.key_id,
                uploaded_by=by.actor,
            )
            session.add(record)
            session.flush()
            self.audit.append(
                session,
                actor=by.actor,
                action="agent_release.upload",
                target=f"agent-release:{version}",
                outcome="ok",
                detail={"sums_sha256": checked.sums_sha256, "size": size},
            )
            return _info(record)

    def _remove_strays(self) -> None:
        """Uploads a crash cut off (a day old: one still being written is left alone)."""
        for stray in self.folder.glob(".incoming-*"):
            with contextlib.suppress(OSError):
                if time.time() - stray.stat().st_mtime > STRAY_AFTER_S:
                    stray.unlink()

    def _refused(self, by: Principal, reason: str) -> None:
        with session_scope(self.engine) as session:
            self.audit.append(
                session,
                actor=by.actor,
                action="agent_release.upload",
                target="agent-release",
                outcome="refused",
                detail={"reason": reason[:500]},
            )

    def path(self, version: str) -> Path:
        return self.folder / f"appliance-agent-{version}.tar"

    def list(self) -> list[AgentReleaseInfo]:
        with Session(self.engine) as session:
            rows = session.exec(select(AgentReleaseRecord).order_by(col(AgentReleaseRecord.id)))
            return [_info(r) for r in rows]

    def get(self, version: str) -> AgentReleaseInfo:
        with Session(self.engine) as session:
            record = session.exec(
                select(AgentReleaseRecord).where(AgentReleaseRecord.version == version)
            ).first()
            if record is None:
                raise NotFoundError(f"no agent release {version}")
            return _info(record)


def _agent_version(archive: Path, checked: VerifiedArchive) -> str:
    """The version of a checked agent archive, from its (signed) manifest."""
    if "MANIFEST.json" not in checked.files:
        raise ArchiveRefused(f"{checked.top} has no MANIFEST.json")
    with tarfile.open(archive) as tar:
        read = tar.extractfile(f"{checked.top}/MANIFEST.json")
        manifest = json.loads(read.read()) if read else {}
    if manifest.get("kind") != "agent":
        raise ArchiveRefused(
            f"{checked.top} is a {manifest.get('kind')!r} release, not an agent release"
        )
    version = str(manifest.get("version", ""))
    if not version or checked.top != f"appliance-agent-{version}" or len(version) > 64:
        raise ArchiveRefused(f"{checked.top}: its manifest names version {version!r}")
    return version
