"""Making a backup of a hub, running or not.

The records are copied first (one consistent snapshot), then the files. Every
file the snapshot refers to is written before its record is committed
(artifacts, feature snapshots and keys are content-addressed or written once),
so the files read afterwards include all of them; what is newer than the
snapshot is harmless extra. TUF metadata read after the snapshot is at least
as new as what agents have seen when the backup ends, so a restored hub does
not look like a rollback to them.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import socket
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from appliance import __version__
from appliance.clock import iso_utc, utcnow
from appliance.errors import ConfigError
from appliance.fsutil import atomic_open
from appliance.settings import HubSettings
from hub.backup import database
from hub.backup.errors import BackupError
from hub.backup.manifest import (
    DATA_ROOT,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_MEMBER,
    PG_DUMP_MEMBER,
    SQLITE_MEMBER,
    AuditHead,
    DatabaseKind,
    DirectoryEntry,
    FileEntry,
    Manifest,
    encode_manifest,
)
from hub.backup.stream import HashingReader

ARCHIVE_MODE: Final = 0o600
"""The archive holds the hub's private keys: only its owner may read it."""
_SQLITE_FILES: Final = frozenset({"hub.db", "hub.db-wal", "hub.db-shm", "hub.db-journal"})
"""The live database and its journals: replaced in the archive by the consistent copy."""
_IN_FLIGHT: Final = frozenset({"artifacts/tmp"})
"""Folders of half-made uploads; kept as empty folders."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackupResult:
    archive: Path
    manifest: Manifest
    vanished: tuple[str, ...] = ()
    """Files deleted by the running hub between listing and reading them (not in the backup)."""
    outside: tuple[Path, ...] = field(default_factory=tuple)
    """Files the hub's settings name outside its data directory: not in the backup."""


def backup_hub(settings: HubSettings, out: Path, *, overwrite: bool = False) -> BackupResult:
    """Write a backup of the hub described by ``settings`` to the tar file ``out``.

    The archive appears at ``out`` complete or not at all (written beside it,
    then renamed), with mode 0600.
    """
    data_dir = _check_source(settings.data_dir)
    out = _check_out(out, data_dir, overwrite=overwrite)
    url = settings.resolved_database_url
    kind = database.database_kind(url)
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".work"))
    try:
        head, records = _dump_records(url, kind, work)
        with atomic_open(out, mode=ARCHIVE_MODE) as handle:
            manifest, vanished = _write_archive(handle, data_dir, kind, head, records)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BackupResult(out, manifest, vanished, _outside_files(settings, data_dir))


def backup_before_migrating(settings: HubSettings) -> Path:
    """A backup of the hub in its backup folder, named for the time, before its schema
    changes; the migration waits for it and does not start when it fails."""
    folder = settings.resolved_backup_dir
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    out = folder / f"before-migration-{utcnow().strftime('%Y%m%dT%H%M%SZ')}.tar"
    log.warning("the hub database is behind this release: backing it up to %s first", out)
    return backup_hub(settings, out).archive


def _check_source(data_dir: Path) -> Path:
    if not data_dir.is_dir():
        raise ConfigError(
            f"no hub data directory at {data_dir}",
            hint="pass the hub's --data-dir (or set APPLIANCE_DATA_DIR)",
        )
    return data_dir.resolve()


def _check_out(out: Path, data_dir: Path, *, overwrite: bool) -> Path:
    out = out.expanduser().absolute()
    if out.resolve().is_relative_to(data_dir):
        raise ConfigError(
            f"{out} is inside the hub's data directory",
            hint="write the backup elsewhere, ideally to another disk",
        )
    if not out.parent.is_dir():
        raise ConfigError(f"no folder {out.parent} to write the backup in")
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists already", hint="pass --force to replace it")
    if out.is_dir():
        raise ConfigError(f"{out} is a folder", hint="--out names the tar file to write")
    return out


def _dump_records(url: str, kind: DatabaseKind, work: Path) -> tuple[AuditHead, tuple[str, Path]]:
    """A consistent copy of the records in ``work``: (audit head, (member name, file))."""
    if kind == "sqlite":
        copy = work / "hub.db"
        return database.snapshot_sqlite(database.sqlite_file(url), copy), (SQLITE_MEMBER, copy)
    head = database.postgres_head(url)
    dump = work / "hub.pgdump"
    database.dump_postgres(url, dump)
    return head, (PG_DUMP_MEMBER, dump)


def _write_archive(
    handle: IO[bytes],
    data_dir: Path,
    kind: DatabaseKind,
    head: AuditHead,
    records: tuple[str, Path],
) -> tuple[Manifest, tuple[str, ...]]:
    files: list[FileEntry] = []
    directories: list[DirectoryEntry] = []
    vanished: list[str] = []
    with tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member, path, is_dir in _walk(data_dir):
            if is_dir:
                directories.append(DirectoryEntry(path=member, mode=_mode_of_dir(path)))
                continue
            entry = add_file(tar, member, path)
            if entry is None:
                vanished.append(member)
            else:
                files.append(entry)
        entry = add_file(tar, *records)
        if entry is None:
            raise BackupError(f"the copy of the records at {records[1]} disappeared")
        files.append(entry)
        manifest = Manifest(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            appliance_version=__version__,
            created_at=iso_utc(utcnow()),
            host=socket.gethostname(),
            source_data_dir=str(data_dir),
            database=kind,
            audit_head=head,
            directories=directories,
            files=files,
        )
        _add_bytes(tar, MANIFEST_MEMBER, encode_manifest(manifest))
    return manifest, tuple(vanished)


def _walk(data_dir: Path) -> Iterator[tuple[str, Path, bool]]:
    """(member name, path, is a directory) under ``data_dir``, sorted, links followed once.

    Links are followed (an operator may keep artifacts on another disk) and
    archived as what they point to; a folder already visited is not entered again.
    """
    seen: set[tuple[int, int]] = set()
    for root, dirs, names in os.walk(data_dir, followlinks=True):
        folder = Path(root)
        info = folder.stat()
        if (info.st_dev, info.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        relative = folder.relative_to(data_dir).as_posix()
        dirs.sort()
        yield (DATA_ROOT if relative == "." else f"{DATA_ROOT}/{relative}"), folder, True
        if relative in _IN_FLIGHT:
            dirs[:] = []
            continue
        for name in sorted(names):
            if _skipped(relative, name):
                continue
            member = f"{DATA_ROOT}/{name}" if relative == "." else f"{DATA_ROOT}/{relative}/{name}"
            yield member, folder / name, False


def _skipped(relative: str, name: str) -> bool:
    """The live database files, and temporary files of writes still in progress."""
    if relative == "." and name in _SQLITE_FILES:
        return True
    return name.startswith(".") and name.endswith(".tmp")


def _mode_of_dir(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def add_file(tar: tarfile.TarFile, member: str, path: Path) -> FileEntry | None:
    """Stream ``path`` into ``tar`` as ``member``, hashing as it goes; None if it is gone.

    The file is opened once and read through that handle: the hub replaces
    files by renaming new ones into place, so what is read is one version.
    """
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None
    with handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        entry = tarfile.TarInfo(member)
        entry.size = info.st_size
        entry.mode = stat.S_IMODE(info.st_mode)
        entry.mtime = info.st_mtime
        reader = HashingReader(handle)
        try:
            tar.addfile(entry, reader)
        except OSError as exc:
            raise BackupError(
                f"{path} changed while it was read: {exc}", hint="run the backup again"
            ) from exc
    return FileEntry(
        path=member,
        sha256=reader.hexdigest(),
        size=info.st_size,
        mode=entry.mode,
        mtime_ns=info.st_mtime_ns,
    )


def _add_bytes(tar: tarfile.TarFile, member: str, data: bytes) -> None:
    entry = tarfile.TarInfo(member)
    entry.size = len(data)
    entry.mode = ARCHIVE_MODE
    entry.mtime = int(utcnow().timestamp())
    tar.addfile(entry, io.BytesIO(data))


def _outside_files(settings: HubSettings, data_dir: Path) -> tuple[Path, ...]:
    """Files the settings point at outside the data directory, which the backup leaves out."""
    tls = settings.tls
    named = (tls.cert, tls.key, tls.client_ca, settings.residency_policy)
    return tuple(
        path
        for path in named
        if path is not None and not path.expanduser().resolve().is_relative_to(data_dir)
    )
