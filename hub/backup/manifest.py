"""The manifest inside a hub backup, and the rules that keep its paths safe to extract.

A backup is an uncompressed POSIX (pax) tar that holds only regular files:

* ``data/…``: the hub's data directory (keys, artifacts, TUF metadata, feature
  files, TLS and CA files), with ``data/hub.db`` a consistent copy of the SQLite
  records when the hub keeps them there;
* ``database/hub.pgdump``: ``pg_dump``'s custom-format dump, when the records
  are on PostgreSQL;
* ``manifest.json``, written last: every other member with its SHA-256, size,
  mode and modification time, the directories with their modes, the appliance
  version, the time, and the head of the audit chain.

Restore trusts nothing in the archive that the manifest does not name, and no
name that could land outside the target folder.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Final, Literal

import msgspec

from hub.backup.errors import BackupFormatError

FORMAT: Final = "appliance-hub-backup"
FORMAT_VERSION: Final = 1
MANIFEST_MEMBER: Final = "manifest.json"
DATA_ROOT: Final = "data"
SQLITE_MEMBER: Final = "data/hub.db"
PG_DUMP_MEMBER: Final = "database/hub.pgdump"
MAX_MANIFEST_BYTES: Final = 256 * 2**20
"""About a million files; a larger manifest is refused rather than read into memory."""

DatabaseKind = Literal["sqlite", "postgresql"]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")


class FileEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One regular file of the archive, as it was read from the hub."""

    path: str
    """Member name in the archive (``data/…`` or ``database/hub.pgdump``)."""
    sha256: str
    size: int
    mode: int
    """Permission bits (``0o600`` for private keys), restored as they were."""
    mtime_ns: int
    """Kept because the JWT keyring prunes its oldest keys by modification time."""


class DirectoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A directory of the data folder (``data`` is its root), so empty ones and 0700 come back."""

    path: str
    mode: int


class AuditHead(msgspec.Struct, frozen=True, kw_only=True):
    """The newest audit entry in the backed-up records (seq 0: none yet)."""

    seq: int
    hash: str


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    format: str
    format_version: int
    appliance_version: str
    created_at: str
    host: str
    source_data_dir: str
    database: DatabaseKind
    audit_head: AuditHead
    directories: list[DirectoryEntry]
    files: list[FileEntry]

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files)

    @property
    def database_member(self) -> str:
        return PG_DUMP_MEMBER if self.database == "postgresql" else SQLITE_MEMBER


def encode_manifest(manifest: Manifest) -> bytes:
    """Indented JSON, so an operator can read what a backup holds with ``tar -xOf``."""
    return msgspec.json.format(msgspec.json.encode(manifest), indent=1) + b"\n"


def decode_manifest(data: bytes) -> Manifest:
    """Parse and check a manifest; :class:`BackupFormatError` names what is wrong."""
    try:
        manifest = msgspec.json.decode(data, type=Manifest)
    except msgspec.DecodeError as exc:
        raise BackupFormatError(f"the backup's manifest is malformed: {exc}") from exc
    if manifest.format != FORMAT or manifest.format_version != FORMAT_VERSION:
        raise BackupFormatError(
            f"not a hub backup this version reads: format {manifest.format!r} "
            f"version {manifest.format_version}",
            hint=f"restore it with the appliance version that made it "
            f"({manifest.appliance_version})",
        )
    _check_entries(manifest)
    return manifest


def _check_entries(manifest: Manifest) -> None:
    files = {entry.path for entry in manifest.files}
    if len(files) != len(manifest.files):
        raise BackupFormatError("the backup's manifest lists a file twice")
    for entry in manifest.files:
        check_member_name(entry.path)
        if entry.path == MANIFEST_MEMBER:
            raise BackupFormatError("the backup's manifest lists itself")
        if not _HEX64.fullmatch(entry.sha256) or entry.size < 0 or not 0 <= entry.mode <= 0o7777:
            raise BackupFormatError(f"the backup's manifest entry for {entry.path} is malformed")
    for directory in manifest.directories:
        if directory.path != DATA_ROOT:
            check_member_name(directory.path)
        if not directory.path.startswith(DATA_ROOT) or not 0 <= directory.mode <= 0o7777:
            raise BackupFormatError(
                f"the backup's manifest entry for {directory.path} is malformed"
            )
        if directory.path in files:
            raise BackupFormatError(f"{directory.path} is listed as both a file and a directory")
    for path in files:
        for parent in PurePosixPath(path).parents:
            if str(parent) in files:
                raise BackupFormatError(f"{parent} is listed as a file and as the folder of {path}")
    if manifest.database_member not in files:
        raise BackupFormatError(
            f"the backup's manifest says its records are on {manifest.database} "
            f"but lists no {manifest.database_member}"
        )


def check_member_name(name: str) -> str:
    """Refuse a name that is absolute, climbs out (``..``), or is not ours; return it."""
    path = PurePosixPath(name)
    unsafe = (
        not name
        or name.startswith("/")
        or _CONTROL.search(name) is not None
        or any(part in ("", ".", "..") for part in name.split("/"))
    )
    if unsafe:
        raise BackupFormatError(f"unsafe path in the backup: {name!r}; nothing was restored")
    ours = name in (MANIFEST_MEMBER, PG_DUMP_MEMBER) or (
        path.parts[0] == DATA_ROOT and len(path.parts) > 1
    )
    if not ours:
        raise BackupFormatError(f"unexpected member {name!r} in the backup; nothing was restored")
    return name


def data_relative(member: str) -> PurePosixPath:
    """Where a ``data/…`` member goes inside the restored data directory."""
    return PurePosixPath(member).relative_to(DATA_ROOT)
