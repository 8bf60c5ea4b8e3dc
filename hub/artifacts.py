"""Content-addressed artifact store under the hub's data directory.

A blob lives at ``artifacts/sha256/ab/abcdef…``; writing the same content twice
stores it once. Blobs are written to a temporary file and renamed into place,
so a reader never sees half of one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from appliance.errors import NotFoundError
from appliance.fsutil import fsync_dir, sha256_file


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise NotFoundError(f"no artifact {sha256!r}")
        return self.root / "sha256" / sha256[:2] / sha256

    def put_file(self, source: Path) -> tuple[str, int]:
        """Copy ``source`` into the store; return its SHA-256 and length."""
        fd, tmp_name = tempfile.mkstemp(dir=self.root / "tmp")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as target, source.open("rb") as src:
                shutil.copyfileobj(src, target, 1 << 20)
                target.flush()
                os.fsync(target.fileno())
            digest, length = sha256_file(tmp)
            final = self.path_for(digest)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            fsync_dir(final.parent)
            return digest, length
        finally:
            tmp.unlink(missing_ok=True)

    def open_path(self, sha256: str) -> Path:
        path = self.path_for(sha256)
        if not path.is_file():
            raise NotFoundError(f"artifact {sha256[:16]}… is missing from the store")
        return path
