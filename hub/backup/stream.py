"""Streaming with a running SHA-256, so no file of any size is ever held in memory."""

from __future__ import annotations

import hashlib
from typing import IO, Final

CHUNK: Final = 1 << 20


class HashingReader:
    """A file-like reader that hashes what passes through it (for ``TarFile.addfile``)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self._digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._digest.update(data)
        return data

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def copy_hashing(source: IO[bytes], sink: IO[bytes] | None = None) -> tuple[str, int]:
    """Read ``source`` to its end in chunks, writing to ``sink`` if given: (SHA-256, length)."""
    digest = hashlib.sha256()
    length = 0
    while chunk := source.read(CHUNK):
        digest.update(chunk)
        length += len(chunk)
        if sink is not None:
            sink.write(chunk)
    return digest.hexdigest(), length
