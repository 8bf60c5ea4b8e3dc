"""Where the hub's database stands against the code's schema, and bringing it to head.

The schema is versioned with Alembic (revisions in ``hub/migrations/versions``), on SQLite
and PostgreSQL alike. At start the hub (:func:`prepare`):

- creates an empty database at head;
- takes a database made before migrations existed (tables, no ``alembic_version``) as
  the baseline revision, which is the schema those releases made;
- refuses a database behind head, naming ``appliance hub db upgrade``, unless told to
  migrate, which first calls the ``backup`` it was given;
- refuses a database ahead of head (a newer release's), since this code cannot know its
  tables.

On PostgreSQL the whole of it holds an advisory lock, so replicas starting together
migrate once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

import hub.tables  # noqa: F401  (every table on SQLModel.metadata)
from appliance.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"
BASELINE = "0001"
"""The schema of the releases before migrations (what their ``create_all`` made)."""
UPGRADE_COMMAND = "appliance hub db upgrade"
_LOCK_KEY = 0x61707068756200  # pg_advisory_xact_lock's key: "apphub" in hex
_VERSION_TABLE = "alembic_version"


class SchemaBehindError(ConfigError):
    """The database is at an older revision than this release's code."""


@dataclass(frozen=True)
class SchemaState:
    current: str | None
    """The database's revision; ``None`` for an empty database."""
    head: str
    """The code's newest revision."""
    before_migrations: bool = False
    """Tables made by a release before migrations, not yet stamped (taken as the baseline)."""

    @property
    def at_head(self) -> bool:
        return self.current == self.head

    def describe(self) -> str:
        where = self.current or "empty"
        if self.before_migrations:
            where = f"{BASELINE} (made before migrations)"
        return f"database at {where}, code at {self.head}"


def scripts() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def head() -> str:
    revision = scripts().get_current_head()
    assert revision is not None, "hub/migrations/versions holds no revision"
    return revision


def configure_context(connection: Connection) -> None:
    """Alembic's context for ``connection`` (``hub/migrations/env.py`` calls this)."""
    from alembic import context  # lazy: alembic.context exists only while a command runs

    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=True,  # SQLite alters a table by copying it; Alembic's batch mode
        compare_type=True,
    )


def state(engine: Engine) -> SchemaState:
    with engine.connect() as connection:
        return _state(connection)


def _state(connection: Connection) -> SchemaState:
    current = MigrationContext.configure(connection).get_current_revision()
    if current is None:
        tables = set(inspect(connection).get_table_names()) - {_VERSION_TABLE}
        if tables & set(SQLModel.metadata.tables):
            return SchemaState(BASELINE, head(), before_migrations=True)
    return SchemaState(current, head())


def prepare(
    engine: Engine, *, migrate: bool = False, backup: Callable[[], Any] | None = None
) -> SchemaState:
    """Bring an empty database to head; accept one at head; upgrade one behind head only
    when ``migrate`` (after ``backup()``), else refuse it naming the command."""
    with _locked(engine) as connection:
        found = _state(connection)
        if found.current is None:
            _run(connection, "upgrade", "head")
            return _state(connection)
        if found.before_migrations:
            _run(connection, "stamp", BASELINE)
        if found.at_head:
            return _state(connection)
        _refuse_newer(found)
        if not migrate:
            raise SchemaBehindError(
                f"the hub database is behind this release ({found.describe()})",
                hint=f"run '{UPGRADE_COMMAND}' (it takes a backup first), or start the hub "
                "with --migrate",
            )
        if backup is not None:
            backup()
        _run(connection, "upgrade", "head")
        return _state(connection)


def upgrade(
    engine: Engine, *, backup: Callable[[], Any] | None = None
) -> tuple[SchemaState, SchemaState]:
    """Bring the database to head, ``backup()`` first when it holds records (a database
    from before migrations is stamped as the baseline); its state before and after. A
    newer release's database is refused before anything, the backup included, is done."""
    with _locked(engine) as connection:
        before = _state(connection)
        if before.at_head and not before.before_migrations:
            return before, before
        _refuse_newer(before)
        if before.current is not None and backup is not None:
            backup()
        if before.before_migrations:
            _run(connection, "stamp", BASELINE)
        _run(connection, "upgrade", "head")
        return before, _state(connection)


def _refuse_newer(found: SchemaState) -> None:
    if found.current is not None and found.current not in _known():
        raise ConfigError(
            f"the hub database is at revision {found.current}, which this release does "
            f"not know (its newest is {found.head}): a newer release made it",
            hint="run the release that made it, or restore a backup taken before",
        )


def differences(engine: Engine, tables: MetaData | None = None) -> list[Any]:
    """What Alembic's autogenerate finds between ``tables`` (default: those in code) and
    the database's; empty when the migrations describe the models."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        found = compare_metadata(context, tables or SQLModel.metadata)
        return [d for d in found if not _ignored(d)]


def history() -> list[tuple[str, str | None, str]]:
    """Every revision, newest first: (revision, the one it follows, its message)."""
    return [
        (str(s.revision), _down(s.down_revision), s.doc or "") for s in scripts().walk_revisions()
    ]


def _known() -> set[str]:
    return {str(s.revision) for s in scripts().walk_revisions()}


def _down(revision: Any) -> str | None:
    return None if revision is None else str(revision)


def _ignored(difference: Any) -> bool:
    """Alembic's own version table is not one of ours."""
    return (
        isinstance(difference, tuple)
        and difference[0] == "remove_table"
        and difference[1].name == _VERSION_TABLE
    )


def _run(connection: Connection, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    getattr(command, action)(config, revision)


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """One transaction that holds the database against other migrators until it ends: on
    PostgreSQL the hub's advisory lock; on SQLite ``BEGIN IMMEDIATE``.

    SQLite's Python driver opens a transaction only before INSERT, UPDATE and DELETE, so a
    ``CREATE TABLE`` would commit by itself and a failed migration would leave half a
    schema; here the driver leaves transactions to us and the DDL is rolled back with
    the rest.
    """
    with engine.connect() as connection:
        if connection.dialect.name != "sqlite":
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY}
                    )
                yield connection
            return
        driver = connection.connection.driver_connection
        assert driver is not None
        managed = driver.isolation_level
        driver.isolation_level = None  # the driver begins nothing by itself
        try:
            with connection.begin():
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                yield connection
        finally:
            driver.isolation_level = managed
