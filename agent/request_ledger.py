"""Which experiment and variant answered each request, until its feedback comes.

``POST /v2/models/{name}/feedback`` names a request id; its outcome counts for the
variant that answered, once. One process keeps the ids in memory
(:class:`MemoryLedger`). The processes of a ``--workers N`` agent share one SQLite
table under the data directory (:class:`SharedLedger`): feedback may reach another
process than the one that answered, and deleting the row is what makes it count once,
whichever process takes it first.

Both keep at most ``MAX_REMEMBERED`` ids, forgetting the oldest first; the memory ledger
also at most ``MAX_REMEMBERED_BYTES`` of them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

from appliance.fsutil import private_file

MAX_REMEMBERED = 100_000
"""Request ids kept for feedback; the oldest are forgotten first …"""
MAX_REMEMBERED_BYTES = 16 << 20
"""… and at most this much memory for them (the v2 codec refuses ids over 128 characters)."""
_ENTRY_BYTES = 200
"""What one remembered id costs besides its characters (dict slot, tuple, strings)."""
LEDGER_FILE = "requests.sqlite"
"""The shared ledger's file, in the processes' shared folder (:mod:`agent.peers`)."""
_PRUNE_EVERY = 1000
"""The shared ledger trims its oldest rows after this many new ones."""

Answered = tuple[str, str]
"""(experiment, variant)."""


class RequestLedger(Protocol):
    def remember(self, request_id: str, answered: Answered) -> None: ...

    def look_up(self, request_id: str) -> Answered | None: ...

    def take(self, request_id: str) -> bool:
        """Forget ``request_id``; whether it was still remembered (only one taker wins)."""
        ...

    def keep_only(self, experiments: set[str]) -> None:
        """Forget the requests of experiments not in ``experiments`` (they ended)."""
        ...

    def size(self) -> tuple[int, int]:
        """(ids remembered, bytes they take)."""
        ...


class MemoryLedger:
    def __init__(self) -> None:
        self._requests: OrderedDict[str, Answered] = OrderedDict()
        self._held_bytes = 0
        self._lock = threading.Lock()

    def remember(self, request_id: str, answered: Answered) -> None:
        with self._lock:
            self._forget(request_id)
            self._requests[request_id] = answered
            self._held_bytes += _cost(request_id)
            while self._requests and (
                len(self._requests) > MAX_REMEMBERED or self._held_bytes > MAX_REMEMBERED_BYTES
            ):
                self._forget(next(iter(self._requests)))

    def look_up(self, request_id: str) -> Answered | None:
        return self._requests.get(request_id)

    def take(self, request_id: str) -> bool:
        with self._lock:
            return self._forget(request_id)

    def keep_only(self, experiments: set[str]) -> None:
        with self._lock:
            for request_id, (experiment, _variant) in list(self._requests.items()):
                if experiment not in experiments:
                    self._forget(request_id)

    def size(self) -> tuple[int, int]:
        with self._lock:
            return len(self._requests), self._held_bytes

    def _forget(self, request_id: str) -> bool:
        if self._requests.pop(request_id, None) is None:
            return False
        self._held_bytes -= _cost(request_id)
        return True


class SharedLedger:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        private_file(path)
        self.path = path
        self._lock = threading.Lock()
        self._added = 0
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")  # ids for feedback: a crash may lose some
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS requests "
            "(id TEXT PRIMARY KEY, experiment TEXT NOT NULL, variant TEXT NOT NULL)"
        )

    def remember(self, request_id: str, answered: Answered) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO requests (id, experiment, variant) VALUES (?, ?, ?)",
                (request_id, *answered),
            )
            self._added += 1
            if self._added % _PRUNE_EVERY == 0:
                self._db.execute(
                    "DELETE FROM requests WHERE rowid <= (SELECT max(rowid) FROM requests) - ?",
                    (MAX_REMEMBERED,),
                )

    def look_up(self, request_id: str) -> Answered | None:
        with self._lock:
            row = self._db.execute(
                "SELECT experiment, variant FROM requests WHERE id = ?", (request_id,)
            ).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    def take(self, request_id: str) -> bool:
        with self._lock:
            done = self._db.execute("DELETE FROM requests WHERE id = ?", (request_id,))
        return done.rowcount == 1

    def keep_only(self, experiments: set[str]) -> None:
        marks = ",".join("?" * len(experiments))
        with self._lock:
            self._db.execute(
                f"DELETE FROM requests WHERE experiment NOT IN ({marks})",
                sorted(experiments),
            )

    def size(self) -> tuple[int, int]:
        with self._lock:
            (count,) = self._db.execute("SELECT count(*) FROM requests").fetchone()
            (pages,) = self._db.execute("PRAGMA page_count").fetchone()
            (page,) = self._db.execute("PRAGMA page_size").fetchone()
        return int(count), int(pages) * int(page)


def _cost(request_id: str) -> int:
    return len(request_id.encode()) + _ENTRY_BYTES
