"""Check an installer archive: its signature, then the hash of every file in it.

An archive (``appliance-<kind>-<version>.tar``) holds one folder. In it,
``SHA256SUMS`` lists ``<sha256>  <path>`` for every other file (the format of
``sha256sum``), and ``SHA256SUMS.sig`` is a raw 64-byte Ed25519 signature over
the bytes of ``SHA256SUMS`` by the release key. Without the appliance at hand
the same check is two standard commands in the unpacked folder::

    openssl pkeyutl -verify -pubin -inkey release.pub -rawin \\
        -in SHA256SUMS -sigfile SHA256SUMS.sig
    sha256sum --check --strict SHA256SUMS

An archive is refused, naming the file, when the signature does not verify
with the pinned public key, a listed file is missing or differs, a file is not
listed, a member is a link or device, or a path leaves the folder.

This module needs only the standard library and ``cryptography``: the Ansible
roles run it on the control node (``roles/common/files/verify_archive.py`` is a
link to it) before anything is copied to a host.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SUMS_NAME = "SHA256SUMS"
SIG_NAME = "SHA256SUMS.sig"
_CHUNK = 1 << 20


class ArchiveRefused(Exception):
    """The archive must not be installed; the message names the file at fault."""


@dataclass(frozen=True)
class VerifiedArchive:
    """What a successful check saw."""

    top: str
    """The archive's single top folder, e.g. ``appliance-agent-0.1.0``."""
    files: dict[str, str] = field(default_factory=dict)
    """Path inside ``top`` → hex SHA-256, for every file listed in ``SHA256SUMS``."""
    key_id: str = ""
    """Hex SHA-256 of the raw public key that signed it."""
    sums_sha256: str = ""
    """Hex SHA-256 of ``SHA256SUMS``: tells two builds of one version apart."""


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The pinned release key: a PEM (SubjectPublicKeyInfo) Ed25519 public key."""
    try:
        public = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ArchiveRefused(f"cannot read the release public key {path}: {exc}") from exc
    if not isinstance(public, Ed25519PublicKey):
        raise ArchiveRefused(f"{path} is not an Ed25519 public key")
    return public


def public_key_id(public: Ed25519PublicKey) -> str:
    """Hex SHA-256 of the raw 32-byte key (as TUF and ``appliance.security.keys`` compute ids)."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def format_sums(hashes: dict[str, str]) -> bytes:
    """``SHA256SUMS`` text for ``path → sha256``, sorted by path, ``sha256sum`` style."""
    lines = [f"{digest}  {path}\n" for path, digest in sorted(hashes.items())]
    return "".join(lines).encode("utf-8")


def parse_sums(data: bytes) -> dict[str, str]:
    """Read ``SHA256SUMS``; refuse anything but ``<64 hex>  <relative path>`` lines."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArchiveRefused(f"{SUMS_NAME} is not UTF-8 text") from exc
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        digest, sep, path = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ArchiveRefused(f"{SUMS_NAME} line {number} is malformed: {line[:80]!r}")
        _check_relative(path)
        if path in sums:
            raise ArchiveRefused(f"{SUMS_NAME} lists {path} twice")
        sums[path] = digest
    if not sums:
        raise ArchiveRefused(f"{SUMS_NAME} lists no file")
    return sums


def _check_relative(path: str) -> None:
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\\" in path or "\n" in path:
        raise ArchiveRefused(f"unsafe path in archive: {path!r}")


def check_signature(sums: bytes, signature: bytes, public: Ed25519PublicKey) -> None:
    """Raise :class:`ArchiveRefused` unless ``signature`` over ``sums`` verifies."""
    try:
        public.verify(signature, sums)
    except InvalidSignature as exc:
        raise ArchiveRefused(
            f"{SIG_NAME} does not verify with the pinned release key "
            f"{public_key_id(public)[:16]}: {SUMS_NAME} was altered or signed by another key"
        ) from exc


def _compare(
    top: str, seen: dict[str, str], sums_bytes: bytes, public: Ed25519PublicKey
) -> VerifiedArchive:
    sums = parse_sums(sums_bytes)
    for path, digest in sums.items():
        actual = seen.get(path)
        if actual is None:
            raise ArchiveRefused(f"{top}/{path} is listed in {SUMS_NAME} but missing")
        if actual != digest:
            raise ArchiveRefused(f"{top}/{path} was altered: its SHA-256 differs from {SUMS_NAME}")
    extra = sorted(set(seen) - set(sums))
    if extra:
        raise ArchiveRefused(f"{top}/{extra[0]} is not listed in {SUMS_NAME}")
    return VerifiedArchive(
        top=top,
        files=dict(sums),
        key_id=public_key_id(public),
        sums_sha256=hashlib.sha256(sums_bytes).hexdigest(),
    )


def _hash_stream(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _members(archive: tarfile.TarFile) -> Iterator[tuple[str, str, tarfile.TarInfo]]:
    """``(top, relative path, member)`` for each member, refusing unsafe ones."""
    top: str | None = None
    for member in archive:
        name = member.name.rstrip("/")
        _check_relative(name)
        first, _, rest = name.partition("/")
        if top is None:
            top = first
        elif first != top:
            raise ArchiveRefused(f"{name} lies outside the archive's folder {top}")
        if member.isdir():
            continue
        if not member.isfile():
            raise ArchiveRefused(f"{name} is not a regular file (links and devices are refused)")
        if not rest:
            raise ArchiveRefused(f"{name} lies outside the archive's folder")
        yield top, rest, member


def verify_archive(path: Path, public: Ed25519PublicKey) -> VerifiedArchive:
    """Check a ``.tar`` archive in one pass, without unpacking it."""
    seen: dict[str, str] = {}
    sums_bytes = signature = None
    top = ""
    try:
        with tarfile.open(path, mode="r:*") as archive:
            names: set[str] = set()
            for top, rest, member in _members(archive):
                if rest in names:
                    raise ArchiveRefused(f"{top}/{rest} appears twice in the archive")
                names.add(rest)
                handle = archive.extractfile(member)
                if handle is None:  # pragma: no cover - isfile() members always have data
                    raise ArchiveRefused(f"{top}/{rest} cannot be read")
                if rest == SUMS_NAME:
                    sums_bytes = handle.read()
                elif rest == SIG_NAME:
                    signature = handle.read()
                else:
                    seen[rest] = _hash_stream(handle)
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise ArchiveRefused(f"{path} is not a readable tar archive: {exc}") from exc
    return _finish(top or path.name, seen, sums_bytes, signature, public)


def verify_tree(folder: Path, public: Ed25519PublicKey) -> VerifiedArchive:
    """Check an unpacked archive folder (the one holding ``SHA256SUMS``)."""
    seen: dict[str, str] = {}
    for entry in sorted(folder.rglob("*")):
        rest = entry.relative_to(folder).as_posix()
        if entry.is_symlink() or not (entry.is_dir() or entry.is_file()):
            raise ArchiveRefused(f"{folder.name}/{rest} is not a regular file")
        if entry.is_file() and rest not in (SUMS_NAME, SIG_NAME):
            with entry.open("rb") as handle:
                seen[rest] = _hash_stream(handle)
    sums_bytes = _read_optional(folder / SUMS_NAME)
    signature = _read_optional(folder / SIG_NAME)
    return _finish(folder.name, seen, sums_bytes, signature, public)


def _read_optional(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _finish(
    top: str,
    seen: dict[str, str],
    sums_bytes: bytes | None,
    signature: bytes | None,
    public: Ed25519PublicKey,
) -> VerifiedArchive:
    if sums_bytes is None:
        raise ArchiveRefused(f"{top}/{SUMS_NAME} is missing: the archive is not a release")
    if signature is None:
        raise ArchiveRefused(f"{top}/{SIG_NAME} is missing: the archive is not signed")
    check_signature(sums_bytes, signature, public)
    return _compare(top, seen, sums_bytes, public)


def verify_path(path: Path, public_key: Path) -> VerifiedArchive:
    """Check an archive file or an unpacked archive folder against a pinned key file."""
    public = load_public_key(public_key)
    if path.is_dir():
        return verify_tree(path, public)
    if not path.exists():
        raise ArchiveRefused(f"no archive at {path}")
    return verify_archive(path, public)


def main(argv: list[str] | None = None) -> int:
    """``verify_archive.py ARCHIVE --public-key K``: exit 0 if intact, 1 if refused."""
    parser = argparse.ArgumentParser(description="check an appliance installer archive")
    parser.add_argument("archive", type=Path, help="the .tar file or its unpacked folder")
    parser.add_argument("--public-key", type=Path, required=True, help="pinned release key (PEM)")
    args = parser.parse_args(argv)
    try:
        result = verify_path(args.archive, args.public_key)
    except ArchiveRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    print(
        f"verified {result.top}: {len(result.files)} files, "
        f"signed by release key {result.key_id[:16]}"
    )
    print(f"{SUMS_NAME} sha256 {result.sums_sha256}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
