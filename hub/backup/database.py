"""The hub's records in a backup: a consistent copy out, a restore in, the audit chain checked.

SQLite is copied with SQLite's online backup API in one step, which reads one
snapshot under a single read transaction: in WAL mode (how ``hub.db`` runs)
that never blocks the running hub's writers, and the copy is what a reader at
one instant saw. PostgreSQL is dumped with ``pg_dump``, which takes its own
snapshot, and restored with ``pg_restore`` in one transaction into an empty
database.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from appliance.errors import ConfigError
from appliance.security.keys import load_public_key
from hub.audit.chain import VerifyReport
from hub.audit.records import HEAD_ROW_ID
from hub.audit.schemas import GENESIS_HASH
from hub.audit.service import AuditLog
from hub.backup.errors import BackupError
from hub.backup.manifest import AuditHead, DatabaseKind
from hub.db import make_engine, session_scope

SQLITE_PREFIX: Final = "sqlite:///"
_PG_HINT: Final = (
    "install the PostgreSQL client tools of the server's major version or newer "
    "(Debian/Ubuntu: apt install postgresql-client)"
)
_HEAD_QUERY: Final = f"SELECT seq, hash FROM audit_head WHERE id = {HEAD_ROW_ID}"


def database_kind(url: str) -> DatabaseKind:
    """Which backend a SQLAlchemy URL names; anything else cannot be backed up here."""
    if url.startswith(SQLITE_PREFIX):
        return "sqlite"
    if url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres"):
        return "postgresql"
    raise ConfigError(
        f"cannot back up records at {url.split(':', 1)[0]}:…",
        hint="the hub's records must be on SQLite or PostgreSQL",
    )


def sqlite_file(url: str) -> Path:
    return Path(url.removeprefix(SQLITE_PREFIX))


# -- SQLite ---------------------------------------------------------------------------


def snapshot_sqlite(source: Path, dest: Path) -> AuditHead:
    """Copy the live ``source`` database to ``dest`` consistently; the audit head it holds."""
    if not source.is_file():
        raise ConfigError(
            f"no hub database at {source}",
            hint="pass the hub's --data-dir (or --database-url), and start the hub once",
        )
    try:
        # mode=rw: never create a database where the hub has none
        src = sqlite3.connect(f"{source.absolute().as_uri()}?mode=rw", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open {source}: {exc}") from exc
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)  # pages=-1: the whole database in one step, one snapshot
            os.chmod(dest, stat.S_IMODE(source.stat().st_mode))  # the copy keeps the file's mode
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal
            _check_sqlite(dst, source)
            return _sqlite_head(dst, source)
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise BackupError(
            f"copying {source} failed: {exc}",
            hint="is there room beside the output file? nothing was written",
        ) from exc
    finally:
        src.close()


def _check_sqlite(connection: sqlite3.Connection, source: Path) -> None:
    """Refuse to archive a copy SQLite itself finds damaged: a backup of it would mislead."""
    verdict = connection.execute("PRAGMA quick_check").fetchone()
    if verdict is None or verdict[0] != "ok":
        raise BackupError(
            f"the hub's database {source} fails SQLite's quick_check: {verdict}",
            hint="restore the last good backup; this one would carry the damage",
        )


def _sqlite_head(connection: sqlite3.Connection, source: Path) -> AuditHead:
    try:
        row = connection.execute(_HEAD_QUERY).fetchone()
    except sqlite3.OperationalError as exc:
        raise BackupError(
            f"{source} is not the hub's database: {exc}",
            hint="pass the hub's --data-dir; the hub creates its tables when it first starts",
        ) from exc
    return _head(row)


def _head(row: Sequence[Any] | None) -> AuditHead:
    """The head row as read (absent until the first audit entry: the genesis)."""
    if row is None:
        return AuditHead(seq=0, hash=GENESIS_HASH)
    return AuditHead(seq=int(row[0]), hash=str(row[1]))


# -- PostgreSQL -----------------------------------------------------------------------


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URI for the client tools, and the environment that carries the password.

    The password goes in ``PGPASSWORD`` rather than on the command line, where
    ``ps`` would show it to every user of the machine.
    """

    parsed = make_url(url)
    env = {"PGPASSWORD": parsed.password} if parsed.password else {}
    plain = parsed._replace(drivername="postgresql", password=None)  # a NamedTuple's _replace
    return plain.render_as_string(hide_password=False), env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not installed; it is needed for a PostgreSQL hub", hint=_PG_HINT
        )
    return found


def _run(args: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(
        args, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        hint = _PG_HINT if "version mismatch" in done.stderr else None
        raise BackupError(f"{what} failed (exit {done.returncode}): {tail}", hint=hint)


def postgres_head(url: str) -> AuditHead:
    """The audit head, read before ``pg_dump`` starts: the dump holds at least this entry."""

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return _head(connection.execute(text(_HEAD_QUERY)).first())
    except DBAPIError as exc:
        raise BackupError(
            f"cannot read the hub's records: {exc.orig}",
            hint="is this the hub's database URL, and has the hub started once?",
        ) from exc
    finally:
        engine.dispose()


def dump_postgres(url: str, dest: Path) -> None:
    """``pg_dump`` in its custom format (compressed, restorable table by table)."""
    uri, env = _libpq(url)
    args = [_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges"]
    _run([*args, f"--file={dest}", f"--dbname={uri}"], env, "pg_dump")


def require_empty_postgres(url: str) -> None:
    """Refuse a target database that has tables: a restore must not merge into records."""

    engine = make_engine(url)
    try:
        tables = inspect(engine).get_table_names()
    except DBAPIError as exc:
        raise BackupError(
            f"cannot reach the target database: {exc.orig}",
            hint="create an empty database for the hub and pass its URL as --database-url",
        ) from exc
    finally:
        engine.dispose()
    if tables:
        raise ConfigError(
            f"the target database already has {len(tables)} tables ({', '.join(tables[:3])}, …)",
            hint="restore into a new, empty database (createdb NAME)",
        )


def set_aside_postgres(url: str, name: str) -> str:
    """Move the hub's schema (every table, the migration revision too) to a new schema
    ``name`` and leave an empty one in its place, for a restore; in one transaction. What
    a failed upgrade left stays there for inspection (``DROP SCHEMA name CASCADE`` then).
    Grants other roles held on the old schema are not carried over. The moved schema's name."""

    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            schema = connection.execute(text("SELECT current_schema()")).scalar_one()
            quoted = connection.dialect.identifier_preparer.quote
            connection.execute(text(f"ALTER SCHEMA {quoted(schema)} RENAME TO {quoted(name)}"))
            connection.execute(text(f"CREATE SCHEMA {quoted(schema)}"))
    except DBAPIError as exc:
        raise BackupError(
            f"could not set the hub's records aside as schema {name}: {exc.orig}",
            hint="the hub's database user must own its schema (it does when it made it)",
        ) from exc
    finally:
        engine.dispose()
    return name


def restore_postgres(url: str, dump: Path) -> None:
    """``pg_restore`` in a single transaction: all records or, on any error, none."""
    uri, env = _libpq(url)
    args = [_tool("pg_restore"), "--no-owner", "--no-privileges", "--single-transaction"]
    _run([*args, "--exit-on-error", f"--dbname={uri}", str(dump)], env, "pg_restore")


# -- the audit chain of restored records ------------------------------------------------


@dataclass(frozen=True)
class AuditCheck:
    """The restored chain verified with the restored hub's key, and held to the backup's head."""

    report: VerifyReport
    head: AuditHead
    head_found: bool
    """The entry the manifest named as head is in the restored chain, with that hash."""

    @property
    def ok(self) -> bool:
        return self.report.ok and self.head_found

    def summary(self) -> str:
        line = self.report.summary()
        if self.head_found:
            return f"{line}; head seq={self.head.seq} matches the backup"
        return f"{line}; but the backup's head seq={self.head.seq} is not in the restored chain"


def verify_audit(url: str, public_key: Path, head: AuditHead) -> AuditCheck:
    """Verify the whole chain and its checkpoints, as ``appliance audit verify`` does."""

    key = load_public_key(public_key)
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            log = AuditLog()
            report = log.verify(session, key)
            newest = log.list(session, after_seq=max(head.seq - 1, 0), limit=1)
    finally:
        engine.dispose()
    found = head.seq == 0 or any(e.seq == head.seq and e.hash == head.hash for e in newest)
    return AuditCheck(report=report, head=head, head_found=found)
