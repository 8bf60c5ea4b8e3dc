"""Small file-system helpers: atomic writes, content hashes and locks between processes.

Every write that another process or a restart may observe goes through
:func:`atomic_write_bytes` so a crash leaves either the old or the new file,
never half of one.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

_CHUNK = 1 << 20


def sha256_file(path: Path) -> tuple[str, int]:
    """Return the hex SHA-256 and the length in bytes of ``path``."""
    digest = hashlib.sha256()
    length = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            length += len(chunk)
    return digest.hexdigest(), length


def save_stream(source: IO[bytes], dest: Path) -> tuple[str, int]:
    """Copy ``source`` to ``dest`` in chunks, hashing on the way: the hex SHA-256 and the
    length, with no more than a chunk in memory."""
    digest = hashlib.sha256()
    length = 0
    with dest.open("wb") as out:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            length += len(chunk)
    return digest.hexdigest(), length


def link_or_copy(source: Path, dest: Path) -> None:
    """``dest`` as a hard link to ``source`` where both share a file system (no copy of a
    multi-GB model), else a copy."""
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_open(path: Path, *, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """Write ``path`` through a temporary file that replaces it only when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


@contextmanager
def file_lock(path: Path, *, shared: bool = False) -> Iterator[None]:
    """Hold an advisory lock on ``path`` (made 0600 if absent) for the block: exclusive,
    or ``shared`` with other shared holders; released when the block ends or the process
    dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``."""
    with atomic_open(path, mode=mode) as handle:
        handle.write(data)


def private_file(path: Path) -> Path:
    """Make sure ``path`` exists readable by its owner only (0600), before a library opens it.

    SQLite creates its database (and its -wal and -shm files, which copy the database's
    mode) with the process's umask: 0644 outside systemd, readable by every local user,
    for a file holding password hashes or reports. An existing file is tightened too.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        if os.fstat(fd).st_uid == os.geteuid():
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return path


def unused_path(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``… the first that does not exist."""
    candidate, n = path, 2
    while candidate.exists():
        candidate, n = path.with_name(f"{path.name}-{n}"), n + 1
    return candidate


def own_like(tree: Path, model: Path) -> None:
    """Give everything in ``tree`` the owner of ``model``: what root restored or copied
    goes back to the service's user. Nothing to do unless run as root."""
    if os.geteuid() != 0 or not model.exists():
        return
    owner = model.stat()
    for folder, dirs, files in os.walk(tree):
        for name in [folder, *(os.path.join(folder, entry) for entry in dirs + files)]:
            os.lchown(name, owner.st_uid, owner.st_gid)
