"""Offline update bundles: one tar file carrying a group's TUF metadata chain and targets.

Layout inside the tar (uncompressed; models compress poorly and streaming reads
stay cheap)::

    update.json                               what the bundle says of itself (not trusted)
    metadata/<N>.root.json                    every root from 1 to the current one
    metadata/timestamp.json
    metadata/<V>.snapshot.json
    metadata/<V>.targets.json
    metadata/<V>.<zone>.<group>.json          the one group the bundle is for
    targets/<zone>/<group>/<sha256>.<name>    the targets, named as the hub serves them

An agent reads it through the same ``tuf.ngclient.Updater`` as online: the
fetcher below answers the updater's URLs from tar members. ``update.json`` only
helps give clear errors (wrong group, stale) before verification; trust comes
from the metadata. Every member is checked before anything is read: plain
files only, no absolute paths, no ``..``, nothing outside the two folders, and
sizes within bounds.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import msgspec

from appliance.errors import BundleFormatError
from appliance.fsutil import atomic_open

FORMAT = "appliance.update/1"
HEADER = "update.json"
METADATA_PREFIX = "metadata/"
TARGETS_PREFIX = "targets/"
URL_SCHEME = "offline:"
METADATA_URL = f"{URL_SCHEME}/{METADATA_PREFIX}"
TARGETS_URL = f"{URL_SCHEME}/{TARGETS_PREFIX}"
MAX_HEADER_BYTES = 64 << 10
MAX_MEMBERS = 10_000


class UpdateHeader(msgspec.Struct, frozen=True, kw_only=True):
    format: str = FORMAT
    zone: str
    group: str
    created_at: str
    expires_at: str
    timestamp_version: int
    hub: str
    models: dict[str, int] = {}


def write_bundle(out: Path, header: UpdateHeader, files: dict[str, Path]) -> None:
    """Write ``files`` (member name → source file) and the header to ``out``, atomically."""
    with (
        atomic_open(out) as raw,
        tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        data = msgspec.json.encode(header)
        info = tarfile.TarInfo(HEADER)
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
        for name, source in sorted(files.items()):
            _check_name(name)
            member = tarfile.TarInfo(name)
            member.size = source.stat().st_size
            member.mode = 0o644
            with source.open("rb") as handle:
                tar.addfile(member, handle)


def _check_name(name: str) -> None:
    normal = posixpath.normpath(name)
    if (
        name != normal
        or name.startswith("/")
        or ".." in name.split("/")
        or "\\" in name
        or not (name == HEADER or name.startswith((METADATA_PREFIX, TARGETS_PREFIX)))
    ):
        raise BundleFormatError(
            f"update bundle entry {name!r} is not allowed",
            hint="the file was not made by 'appliance bundle export' or was altered",
        )


class OfflineBundle:
    """A validated, open update bundle; members are read on demand, never extracted whole."""

    def __init__(self, path: Path, *, max_bytes: int) -> None:
        self.path = path
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise BundleFormatError(f"cannot read update bundle {path}: {exc.strerror}") from exc
        if size > max_bytes:
            raise BundleFormatError(
                f"update bundle {path} is {size} bytes, more than the {max_bytes} allowed"
            )
        try:
            self._tar = tarfile.open(path, mode="r:")  # noqa: SIM115 - closed by close()
            members = self._tar.getmembers()
        except (tarfile.TarError, OSError) as exc:
            raise BundleFormatError(f"{path} is not an update bundle (tar): {exc}") from exc
        if len(members) > MAX_MEMBERS:
            raise BundleFormatError(f"update bundle has {len(members)} entries; too many")
        self._members: dict[str, tarfile.TarInfo] = {}
        for member in members:
            _check_name(member.name)
            if not member.isreg():
                raise BundleFormatError(
                    f"update bundle entry {member.name!r} is a link or device, not a file"
                )
            if member.name in self._members:
                raise BundleFormatError(f"update bundle has {member.name!r} twice")
            self._members[member.name] = member
        header = self._members.get(HEADER)
        if header is None or header.size > MAX_HEADER_BYTES:
            raise BundleFormatError(f"{path} has no {HEADER}; not an update bundle")
        try:
            self.header = msgspec.json.decode(self.read(HEADER), type=UpdateHeader)
        except msgspec.DecodeError as exc:  # malformed JSON as well as a wrong shape
            raise BundleFormatError(f"{HEADER} in {path} is not valid: {exc}") from exc
        if self.header.format != FORMAT:
            raise BundleFormatError(f"{path} has format {self.header.format!r}, not {FORMAT!r}")

    def close(self) -> None:
        self._tar.close()

    def __enter__(self) -> OfflineBundle:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def names(self) -> list[str]:
        return sorted(self._members)

    def has(self, name: str) -> bool:
        return name in self._members

    def open(self, name: str) -> IO[bytes]:
        member = self._members.get(name)
        if member is None:
            raise FileNotFoundError(name)
        handle = self._tar.extractfile(member)
        if handle is None:  # pragma: no cover - regular files always have one
            raise FileNotFoundError(name)
        return handle

    def read(self, name: str) -> bytes:
        with self.open(name) as handle:
            return handle.read()

    def chunks(self, name: str, size: int = 1 << 20) -> Iterator[bytes]:
        with self.open(name) as handle:
            while chunk := handle.read(size):
                yield chunk
