"""Issue 16, item 3: a hub on PostgreSQL rolls back by itself too. A failed upgrade's
records are set aside in a schema of their own (``failed_<time>``), the backup taken
before the migration is restored into the emptied schema, and the hub starts on it; before,
the rollback stopped with 'restore by hand'. Real PostgreSQL, pg_dump and pg_restore."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from appliance.cli.upgrade.data import HubData
from appliance.settings import HubSettings
from hub.db import make_engine, session_scope
from hub.services import build_services

pytestmark = pytest.mark.integration


def _usernames(settings: HubSettings) -> set[str]:
    services = build_services(settings)
    try:
        return {user.username for user in services.identity.list_users()}
    finally:
        services.engine.dispose()


def test_a_failed_upgrade_on_postgresql_is_rolled_back_and_its_records_kept_aside(
    tmp_path: Path, postgres_database: str
) -> None:
    settings = HubSettings(
        data_dir=tmp_path / "hub", database_url=postgres_database, backup_dir=tmp_path / "bk"
    )
    services = build_services(settings)
    try:
        services.identity.create_user("alice", secrets.token_urlsafe(12), ["viewer"], actor="t")
        with session_scope(services.engine) as session:
            services.audit.append(session, actor="t", action="test.note", target="n", outcome="ok")
    finally:
        services.engine.dispose()
    data = HubData(settings, environment={})
    backup = data.backup("appliance-hub-0.2.0")

    # What the new release did before it failed its health check: a new table, a record,
    # a file in the data directory.
    services = build_services(settings)
    try:
        services.identity.create_user("mallory", secrets.token_urlsafe(12), ["admin"], actor="t")
    finally:
        services.engine.dispose()
    engine = make_engine(postgres_database)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE release_n1_only (id integer)"))
    engine.dispose()
    (settings.data_dir / "left-by-n1").write_text("x")

    kept = data.restore(backup)

    assert _usernames(settings) >= {"alice"} and "mallory" not in _usernames(settings)
    assert not (settings.data_dir / "left-by-n1").exists()
    assert (kept / "left-by-n1").exists(), "the failed release's files are kept aside"
    engine = make_engine(postgres_database)
    try:
        schemas = inspect(engine).get_schema_names()
        aside = [name for name in schemas if name.startswith("failed_")]
        assert len(aside) == 1, schemas
        assert "release_n1_only" in inspect(engine).get_table_names(schema=aside[0])
        assert "release_n1_only" not in inspect(engine).get_table_names()
        with engine.connect() as connection:
            kept_users = connection.execute(
                text(f'SELECT username FROM "{aside[0]}".users')
            ).scalars()
            assert "mallory" in set(kept_users)
    finally:
        engine.dispose()
