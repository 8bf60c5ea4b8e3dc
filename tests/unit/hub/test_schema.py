"""Issue 16: the hub's schema is versioned (Alembic) on SQLite and PostgreSQL; a database
behind the code is refused unless migrated, after a backup; a failed migration leaves the
database where it was."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, inspect, text
from sqlmodel import SQLModel

from appliance.errors import ConfigError
from hub import schema
from hub.db import make_engine
from tests.harness.schema import baseline_tables

HEAD = schema.head()

"""This release's head revision (the next release's migrations follow it)."""

SECOND = '''"""A later release's change: one table more.

Revision ID: 9999
Revises: {head}
"""

import sqlalchemy as sa
from alembic import op

revision = "9999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("later_release", sa.Column("id", sa.Integer(), primary_key=True))
    {fail}


def downgrade() -> None:
    op.drop_table("later_release")
'''


def _later_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, fail: bool = False) -> None:
    """This release's migrations plus a revision 9999, as the next release would carry."""
    folder = tmp_path / "migrations"
    shutil.copytree(schema.MIGRATIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    body = SECOND.replace("{fail}", "raise RuntimeError('power cut')" if fail else "pass")
    (folder / "versions" / "r9999_later.py").write_text(body.replace("{head}", HEAD))
    monkeypatch.setattr(schema, "MIGRATIONS", folder)


def _tables(engine) -> set[str]:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        return set(inspect(connection).get_table_names())


def test_the_migrations_describe_the_models(engine) -> None:  # type: ignore[no-untyped-def]
    """The engine fixture's database was made by the migrations: autogenerate finds no
    difference from the tables in code, on SQLite and PostgreSQL."""
    assert schema.state(engine).at_head
    assert set(SQLModel.metadata.tables) <= _tables(engine)
    assert schema.differences(engine) == []


def test_a_model_changed_without_a_migration_is_found(engine) -> None:  # type: ignore[no-untyped-def]
    changed = MetaData()
    for table in SQLModel.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["agents"].append_column(Column("added_without_migration", Integer()))

    found = schema.differences(engine, changed)

    assert [d[0] for d in found] == ["add_column"]
    assert "added_without_migration" in str(found)


def test_a_database_made_before_migrations_is_taken_as_the_baseline(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    SQLModel.metadata.create_all(engine, tables=baseline_tables())  # before migrations
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (username, password_hash, roles, created_at, disabled) "
                "VALUES ('omar', 'x', '[]', '2026-01-01', 0)"
            )
        )
    before = schema.state(engine)
    assert before.before_migrations and before.current == schema.BASELINE

    after = schema.prepare(engine, migrate=True)

    assert after.at_head and not after.before_migrations
    with engine.connect() as connection:
        assert connection.execute(text("SELECT username FROM users")).scalar_one() == "omar"


def test_a_database_behind_the_code_is_refused_naming_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    schema.prepare(engine)  # this release's database
    _later_release(tmp_path, monkeypatch)

    with pytest.raises(schema.SchemaBehindError) as refused:
        schema.prepare(engine)

    assert HEAD in refused.value.message and "9999" in refused.value.message
    assert "appliance hub db upgrade" in (refused.value.hint or "")
    assert schema.state(engine).current == HEAD  # nothing changed
    assert "later_release" not in _tables(engine)


def test_migrating_backs_up_first_then_upgrades(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    schema.prepare(engine)
    _later_release(tmp_path, monkeypatch)
    seen: list[str | None] = []

    after = schema.prepare(engine, migrate=True, backup=lambda: seen.append(_revision(engine)))

    assert seen == [HEAD]  # the backup ran before the schema changed
    assert after.current == "9999" and "later_release" in _tables(engine)


def test_a_failed_backup_stops_the_migration(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    schema.prepare(engine)
    _later_release(tmp_path, monkeypatch)

    def full_disk() -> None:
        raise ConfigError("no space left on the backup disk")

    with pytest.raises(ConfigError, match="no space"):
        schema.prepare(engine, migrate=True, backup=full_disk)
    assert schema.state(engine).current == HEAD


def test_a_migration_that_fails_halfway_leaves_the_database_as_it_was(
    engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The migration and its version stamp are one transaction (SQLite and PostgreSQL both
    roll DDL back), so a failure, or a kill, never leaves half a schema."""
    _later_release(tmp_path, monkeypatch, fail=True)

    with pytest.raises(RuntimeError, match="power cut"):
        schema.prepare(engine, migrate=True)

    assert schema.state(engine).current == HEAD
    assert "later_release" not in _tables(engine)


def test_a_database_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    schema.prepare(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))

    with pytest.raises(ConfigError, match=r"9999.*newer release"):
        schema.prepare(engine, migrate=True)


def _revision(engine) -> str | None:  # type: ignore[no-untyped-def]
    return schema.state(engine).current
