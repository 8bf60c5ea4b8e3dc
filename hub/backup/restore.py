"""Restoring a hub backup into a new data directory, all or nothing.

In order: the target must be new or empty; every member of the archive must be
a regular file with a safe name that the manifest lists, at the size it lists;
then a first pass hashes every file against the manifest, writing nothing.
Only then are the files written into a temporary sibling of the target (hashed
again as they are written, in case the archive changed between the passes),
their modes and times set, the records restored, and the sibling renamed to
the target. Any failure removes the sibling, so the target is never half
there. Last, the restored audit chain is verified with the restored hub's key.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from appliance.errors import ConfigError, StorageError
from appliance.fsutil import fsync_dir
from hub.backup import database
from hub.backup.errors import BackupFormatError, BackupIntegrityError
from hub.backup.manifest import (
    DATA_ROOT,
    MANIFEST_MEMBER,
    MAX_MANIFEST_BYTES,
    PG_DUMP_MEMBER,
    FileEntry,
    Manifest,
    check_member_name,
    data_relative,
    decode_manifest,
)
from hub.backup.stream import copy_hashing

_WRITE_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class RestoreResult:
    data_dir: Path
    manifest: Manifest
    database_url: str
    """Where the restored records are: the hub must be started with this URL."""
    audit: database.AuditCheck


@dataclass(frozen=True)
class _Plan:
    """What an archive holds, checked: the manifest and its members in archive order."""

    manifest: Manifest
    members: list[tuple[tarfile.TarInfo, FileEntry]]


def read_manifest(archive: Path) -> Manifest:
    """Check an archive's structure and return its manifest (no hashes checked, nothing written)."""
    with _open(archive) as tar:
        return _plan(tar).manifest


def restore_hub(archive: Path, data_dir: Path, *, database_url: str | None = None) -> RestoreResult:
    """Restore ``archive`` into the new (or empty) folder ``data_dir``.

    A backup of a PostgreSQL hub needs ``database_url``, an empty PostgreSQL
    database to restore the records into; a SQLite backup refuses one.
    """
    target = _check_target(data_dir)
    with _open(archive) as tar:
        plan = _plan(tar)
        url = _records_url(plan.manifest, target, database_url)
        _check_space(target, plan.manifest)
        _verify(tar, plan)
        _materialise(tar, plan, target, url)
    public_key = target / "keys" / "signing.pub"
    audit = database.verify_audit(url, public_key, plan.manifest.audit_head)
    return RestoreResult(target, plan.manifest, url, audit)


# -- checks before anything is written --------------------------------------------------


def _check_target(data_dir: Path) -> Path:
    target = data_dir.expanduser().absolute()
    if target.is_symlink():
        raise ConfigError(f"{target} is a link", hint="pass the real folder to restore into")
    if target.exists():
        if not target.is_dir():
            raise ConfigError(f"{target} is not a folder")
        if any(target.iterdir()):
            raise ConfigError(
                f"refusing to restore into {target}: it is not empty",
                hint="restore into a new folder; move the old data directory aside first",
            )
        if os.path.ismount(target):
            raise ConfigError(
                f"{target} is a mount point, which cannot be replaced in one rename",
                hint=f"restore into a new folder inside it, e.g. {target / 'hub'}",
            )
    return target


@contextmanager
def _open(archive: Path) -> Iterator[tarfile.TarFile]:
    """The archive, with tar's own errors (bad headers, data cut short) told as a bad backup."""
    try:
        tar = tarfile.open(archive, mode="r:*")  # noqa: SIM115 (closed below, errors told apart)
    except FileNotFoundError as exc:
        raise ConfigError(f"no backup at {archive}") from exc
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BackupFormatError(
            f"{archive} is not a readable backup: {exc}", hint="is the file complete?"
        ) from exc
    with tar:
        try:
            yield tar
        except (tarfile.TarError, EOFError) as exc:
            raise BackupFormatError(
                f"{archive} is corrupted or truncated: {exc}",
                hint="nothing was restored; use another copy of the backup",
            ) from exc


def _plan(tar: tarfile.TarFile) -> _Plan:
    """Every member checked against the manifest: safe, regular, listed once, the listed size."""
    members = _regular_members(tar)
    if MANIFEST_MEMBER not in members:
        raise BackupFormatError(
            "the archive has no manifest.json: not a hub backup, or truncated",
            hint="nothing was restored; use another copy of the backup",
        )
    manifest = _load_manifest(tar, members.pop(MANIFEST_MEMBER))
    listed = {entry.path: entry for entry in manifest.files}
    for name in members:
        if name not in listed:
            raise BackupFormatError(f"{name} is in the archive but not in its manifest")
    for name, entry in listed.items():
        if name not in members:
            raise BackupFormatError(
                f"{name} is in the manifest but not in the archive (truncated?)",
                hint="nothing was restored; use another copy of the backup",
            )
        if members[name].size != entry.size:
            raise BackupIntegrityError(
                f"{name} is {members[name].size} bytes in the archive, "
                f"{entry.size} in the manifest; nothing was restored"
            )
    return _Plan(manifest, [(member, listed[name]) for name, member in members.items()])


def _regular_members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    members: dict[str, tarfile.TarInfo] = {}
    for member in tar.getmembers():
        check_member_name(member.name)
        if not member.isreg():
            raise BackupFormatError(
                f"{member.name} is not a regular file (links, devices and folders are refused); "
                "nothing was restored"
            )
        if member.name in members:
            raise BackupFormatError(f"{member.name} is in the archive twice")
        members[member.name] = member
    return members


def _load_manifest(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Manifest:
    if member.size > MAX_MANIFEST_BYTES:
        raise BackupFormatError(f"the manifest is {member.size} bytes, over the limit")
    handle = tar.extractfile(member)
    if handle is None:
        raise BackupFormatError("the manifest cannot be read")
    with handle:
        return decode_manifest(handle.read())


def _records_url(manifest: Manifest, target: Path, database_url: str | None) -> str:
    if manifest.database == "sqlite":
        if database_url:
            raise ConfigError(
                "this backup holds SQLite records (data/hub.db); --database-url is for "
                "backups of a PostgreSQL hub",
                hint="restore without --database-url",
            )
        return f"{database.SQLITE_PREFIX}{target / 'hub.db'}"
    if not database_url or database.database_kind(database_url) != "postgresql":
        raise ConfigError(
            "this backup holds PostgreSQL records: pass --database-url with an empty "
            "PostgreSQL database to restore them into",
            hint="createdb hub_restored; then --database-url postgresql+psycopg://user@host/"
            "hub_restored",
        )
    database.require_empty_postgres(database_url)
    return database_url


def _check_space(target: Path, manifest: Manifest) -> None:
    existing = target
    while not existing.exists():
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if manifest.total_bytes > free:
        raise StorageError(
            f"the backup needs {manifest.total_bytes / 2**20:.1f} MiB; "
            f"{existing} has {free / 2**20:.1f} MiB free",
            hint="free space or restore onto another disk; nothing was written",
        )


def _verify(tar: tarfile.TarFile, plan: _Plan) -> None:
    """Hash every member against the manifest, in archive order, writing nothing."""
    for member, entry in plan.members:
        source = tar.extractfile(member)
        if source is None:
            raise BackupFormatError(f"{member.name} cannot be read from the archive")
        with source:
            digest, length = copy_hashing(source)
        _compare(entry, digest, length)


def _compare(entry: FileEntry, digest: str, length: int) -> None:
    if digest != entry.sha256 or length != entry.size:
        raise BackupIntegrityError(
            f"{entry.path} does not match the manifest (SHA-256 {digest[:16]}…, "
            f"expected {entry.sha256[:16]}…): the backup was changed or damaged; "
            "nothing was restored",
            hint="use another copy of the backup",
        )


# -- writing ----------------------------------------------------------------------------


def _materialise(tar: tarfile.TarFile, plan: _Plan, target: Path, url: str) -> None:
    """Write everything into a sibling of ``target``, restore the records, rename it into place."""
    created = _missing_ancestors(target.parent)
    staging: Path | None = None
    dump: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.restore-"))
        for member, entry in plan.members:
            if entry.path == PG_DUMP_MEMBER:
                dump = staging.with_name(staging.name + ".pgdump")
                _extract(tar, member, entry, dump)
            else:
                _extract(tar, member, entry, staging / data_relative(entry.path))
        _set_directory_modes(staging, plan.manifest)
        if dump is not None:
            database.restore_postgres(url, dump)
        _publish(staging, target)
    except BaseException as exc:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        for folder in created:
            _rmdir_quietly(folder)
        if isinstance(exc, OSError):
            raise StorageError(
                f"restoring into {target} failed: {exc}", hint="nothing was restored"
            ) from exc
        raise
    finally:
        if dump is not None:
            dump.unlink(missing_ok=True)


def _missing_ancestors(folder: Path) -> list[Path]:
    """Folders that a restore creates, deepest first, so a failed one can remove them again."""
    missing: list[Path] = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    return missing


def _rmdir_quietly(folder: Path) -> None:
    with suppress(OSError):
        folder.rmdir()


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, entry: FileEntry, dest: Path) -> None:
    """Stream one member to a new file (never through a link), check it, set mode and time."""
    source = tar.extractfile(member)
    if source is None:
        raise BackupFormatError(f"{member.name} cannot be read from the archive")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(dest, _WRITE_FLAGS, 0o600)
        with source, os.fdopen(fd, "wb") as out:
            digest, length = copy_hashing(source, out)
            out.flush()
            os.fsync(out.fileno())
            os.fchmod(out.fileno(), entry.mode & 0o777)
    except OSError as exc:
        raise StorageError(
            f"writing {dest} failed: {exc.strerror or exc}",
            hint="nothing was restored; free space or fix permissions and run it again",
        ) from exc
    _compare(entry, digest, length)
    os.utime(dest, ns=(entry.mtime_ns, entry.mtime_ns))


def _set_directory_modes(staging: Path, manifest: Manifest) -> None:
    """Create listed folders (empty ones too) and set their modes, deepest first."""
    ordered = sorted(manifest.directories, key=lambda d: d.path.count("/"), reverse=True)
    paths = [(_data_path(staging, d.path), d.mode) for d in ordered]
    for path, _mode in paths:
        path.mkdir(parents=True, exist_ok=True)
    for path, mode in paths:
        os.chmod(path, mode & 0o777)


def _data_path(staging: Path, member: str) -> Path:
    return staging if member == DATA_ROOT else staging / data_relative(member)


def _publish(staging: Path, target: Path) -> None:
    """Rename the finished folder to ``target`` (replacing it only if it is still empty)."""
    try:
        os.rename(staging, target)
    except OSError as exc:
        raise StorageError(
            f"could not move the restored data to {target}: {exc.strerror or exc}",
            hint="is the target still empty and on the same disk as its parent folder?",
        ) from exc
    fsync_dir(target.parent)
