"""The agent's durable outbox: reports wait on disk until the hub has them, once.

Every report the agent sends (drift statistics, serving summaries, A/B
outcomes) is first written here, in SQLite with ``synchronous=FULL``, under an
idempotency key. Delivery sends a batch; the hub stores each key at most once
and answers with the keys it holds; only then are they deleted here. A crash
between the hub's commit and the local delete resends the batch, and the hub
recognises the keys: nothing is lost, nothing is counted twice.

The queue is bounded. When it is full, the oldest reports are dropped, the
drop is counted (and reported with the next delivery) and logged: an agent cut
off for weeks must not fill its disk.

A report the hub refuses (it names the key and the reason) moves to the dead
letters, so one bad report never blocks the ones behind it. They are kept, bounded
(the oldest go first), for an operator to read in ``/agent/status`` and the
metrics; the agent reports itself degraded while any are kept.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.errors import StorageError
from appliance.fsutil import private_file
from appliance.wire.fleet import ReportKind

log = logging.getLogger(__name__)

OUTBOX_FILE = "outbox.sqlite"
DEFAULT_MAX_REPORTS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    reason TEXT NOT NULL,
    refused_at REAL NOT NULL
);
"""
DEFAULT_MAX_DEAD_LETTERS = 1_000
SCHEMA_VERSION = 1
"""The outbox's tables: version 1 is ``_SCHEMA`` as release 0.1.0 made it."""
_MIGRATIONS: dict[int, tuple[str, ...]] = {}
"""The statements that bring the tables to each version from the one before (none yet)."""


@dataclass(frozen=True)
class Report:
    key: str
    kind: str
    body: dict[str, Any]
    created_at: float


class Outbox:
    def __init__(
        self,
        data_dir: Path,
        *,
        max_reports: int = DEFAULT_MAX_REPORTS,
        max_dead_letters: int = DEFAULT_MAX_DEAD_LETTERS,
    ) -> None:
        self.path = data_dir / OUTBOX_FILE
        self.max_reports = max_reports
        self.max_dead_letters = max_dead_letters
        private_file(self.path)  # what the agent saw and reports: owner only
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._migrate()

    def _migrate(self) -> None:
        """Bring the file's tables to :data:`SCHEMA_VERSION` (``PRAGMA user_version``): a
        new file is created at it; release 0.1.0's, which set no version, holds version 1;
        a newer release's is refused."""
        found = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if found > SCHEMA_VERSION:
            self._db.close()
            raise StorageError(
                f"the outbox {self.path} has version {found}, newer than this release's "
                f"{SCHEMA_VERSION}: a newer release wrote it"
            )
        if found == SCHEMA_VERSION:
            return  # nothing to write (each serving process of --workers opens it too)
        steps = [s for s in _SCHEMA.split(";") if s.strip()] if found == 0 else []
        for version in range(max(found, 1) + 1, SCHEMA_VERSION + 1):
            steps += _MIGRATIONS[version]
        with self._transaction() as db:  # statement by statement: executescript would commit
            for statement in steps:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def put(self, kind: ReportKind, body: dict[str, Any], key: str) -> bool:
        """Queue a report; a key already queued is ignored (returns False)."""
        with self._transaction() as db:
            added = db.execute(
                "INSERT OR IGNORE INTO reports (key, kind, body, created_at) VALUES (?, ?, ?, ?)",
                (key, kind, json.dumps(body, sort_keys=True), time.time()),
            ).rowcount
            (count,) = db.execute("SELECT COUNT(*) FROM reports").fetchone()
            excess = count - self.max_reports
            if excess > 0:
                db.execute(
                    "DELETE FROM reports WHERE seq IN "
                    "(SELECT seq FROM reports ORDER BY seq LIMIT ?)",
                    (excess,),
                )
                db.execute(
                    "INSERT INTO counters (name, value) VALUES ('dropped', ?) "
                    "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                    (excess,),
                )
        if added and excess > 0:
            log.warning(
                "outbox full (%d reports): dropped the %d oldest; the hub has been "
                "unreachable too long",
                self.max_reports,
                excess,
            )
        return bool(added)

    def pending(self, limit: int = 200) -> list[Report]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, kind, body, created_at FROM reports ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [Report(k, kind, json.loads(body), at) for k, kind, body, at in rows]

    def acknowledge(self, keys: list[str]) -> None:
        """The hub holds these: forget them."""
        if not keys:
            return
        with self._transaction() as db:
            db.executemany("DELETE FROM reports WHERE key = ?", [(k,) for k in keys])

    def dead_letter(self, refused: list[tuple[str, str]]) -> int:
        """Move refused reports (key, reason) out of the queue; how many moved."""
        if not refused:
            return 0
        now = time.time()
        with self._transaction() as db:
            moved = 0
            for key, reason in refused:
                row = db.execute("SELECT kind, body FROM reports WHERE key = ?", (key,)).fetchone()
                if row is None:
                    continue
                db.execute(
                    "INSERT INTO dead_letters (key, kind, body, reason, refused_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (key, row[0], row[1], reason[:500], now),
                )
                db.execute("DELETE FROM reports WHERE key = ?", (key,))
                moved += 1
            db.execute(
                "DELETE FROM dead_letters WHERE seq NOT IN "
                "(SELECT seq FROM dead_letters ORDER BY seq DESC LIMIT ?)",
                (self.max_dead_letters,),
            )
        if moved:
            log.warning("the hub refused %d report(s): %s", moved, refused[0][1])
        return moved

    def dead_letters(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest refused reports: key, kind, reason and when."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key, kind, reason, refused_at FROM dead_letters ORDER BY seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [{"key": k, "kind": kind, "reason": r, "refused_at": at} for k, kind, r, at in rows]

    def dead_letter_count(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()
        return int(count)

    def depth(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM reports").fetchone()
        return int(count)

    def dropped(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        return int(row[0]) if row else 0
