"""Rows a serving process saw, handed to the owner's drift windows (``--workers N``).

Only the owning process tests drift (one report per model version and window, as with
one process). The serving processes answer most requests, so their rows must reach it:
each keeps the most recent rows per model version (at most a window's worth, as the
window itself would) and once a second writes them to ``rows-<pid>-<n>.npz`` in the
processes' shared folder; the owner's drift job reads and deletes those files before it
tests. A serving process writes no more while ``MAX_PENDING`` of its files wait, so a
stuck owner costs a few files, not a full disk.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
from pathlib import Path

import numpy as np

from agent.drift.monitor import DriftMonitor
from agent.repository import LoadedModel

log = logging.getLogger(__name__)

MAX_PENDING = 10


class RowSpool:
    """The serving process's side: record on the request path, flush in the background."""

    def __init__(self, folder: Path, window_rows: int, pid: int | None = None) -> None:
        self.folder = folder
        self.window_rows = window_rows
        self.pid = os.getpid() if pid is None else pid
        self._rows: dict[tuple[str, int], list[np.ndarray]] = {}
        self._held: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._count = itertools.count()

    def record(self, model: LoadedModel, feed: dict[str, np.ndarray]) -> None:
        """Keep the first input's rows (2-D floats, finite), as the drift window does."""
        batch = next(iter(feed.values()))
        if batch.ndim != 2 or batch.dtype.kind != "f":
            return
        batch = batch[np.isfinite(batch).all(axis=1)][-self.window_rows :]
        if not len(batch):
            return
        key = (model.name, model.version)
        with self._lock:
            kept = self._rows.setdefault(key, [])
            kept.append(np.array(batch, dtype=np.float32))
            self._held[key] = self._held.get(key, 0) + len(batch)
            while self._held[key] - len(kept[0]) >= self.window_rows:
                self._held[key] -= len(kept.pop(0))

    def flush(self) -> bool:
        """Write what was recorded since the last flush; whether a file was written."""
        with self._lock:
            rows, self._rows, self._held = self._rows, {}, {}
        if not rows:
            return False
        if len(list(self.folder.glob(f"rows-{self.pid}-*.npz"))) >= MAX_PENDING:
            log.warning("the owning process takes no drift rows; dropping this second's")
            return False
        index = np.array(json.dumps([[name, version] for name, version in rows]))
        arrays = [np.concatenate(batches) for batches in rows.values()]
        name = f"rows-{self.pid}-{next(self._count)}.npz"
        temporary = self.folder / f".{name}"
        with temporary.open("wb") as handle:  # arr_0: the index; arr_1…: its rows
            np.savez(handle, index, *arrays)
        os.replace(temporary, self.folder / name)
        return True


def take_spooled(folder: Path, drift: DriftMonitor) -> int:
    """The owner's side: put every spooled row into ``drift``'s windows; rows taken."""
    taken = 0
    for path in sorted(folder.glob("rows-*.npz"), key=_mtime):
        try:
            with np.load(path, allow_pickle=False) as spooled:
                index = json.loads(str(spooled["arr_0"]))
                for i, (name, version) in enumerate(index, start=1):
                    taken += drift.add_rows(str(name), int(version), spooled[f"arr_{i}"])
        except (OSError, ValueError, KeyError) as exc:
            log.error("unreadable drift rows in %s, dropped: %s", path.name, exc)
        path.unlink(missing_ok=True)
    return taken


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
