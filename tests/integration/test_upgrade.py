"""Issue 16: a hub database made by release 0.1.0 (the last before migrations, filled by
the demo: tests/fixtures/hub-0.1.0-demo) upgrades in place with ``appliance hub db
upgrade``, keeps every record and still verifies its audit chain; the hub then starts on
it. A database from a newer release is refused with the reason, not a traceback."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tarfile
from pathlib import Path

from appliance.cli.demo.processes import free_port, hub_process
from tests.harness.cli import appliance

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "hub-0.1.0-demo"


def counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as connection:
        names = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'alembic_version'"
            )
        ]
        return {n: connection.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


def set_key_aside(data_dir: Path) -> None:
    """Before a hub starts on a copy of the fixture: the fixture keeps its hub's public key
    (to verify its chain) but never had the private one, and a hub refuses a public key
    whose private key is gone (what it signed next would not verify against it). So the
    key is set aside, as the refusal tells an operator to, and the hub makes its own."""
    keys = data_dir / "keys"
    (keys / "signing.pub").rename(keys / "signing.pub.0.1.0")


def _hub_copy(tmp_path: Path) -> Path:
    data_dir = tmp_path / "hub"
    shutil.copytree(FIXTURE, data_dir, ignore=shutil.ignore_patterns("README.md"))
    return data_dir


def test_a_demo_filled_hub_from_the_release_before_migrations_upgrades_intact(
    tmp_path: Path,
) -> None:
    data_dir = _hub_copy(tmp_path)
    before = counts(data_dir / "hub.db")
    assert before["model_versions"] == 3 and before["audit_entries"] == 76  # the fixture

    upgraded = appliance("hub", "db", "upgrade", "--data-dir", str(data_dir))

    assert upgraded.returncode == 0, upgraded.stderr
    assert "made before migrations" in upgraded.stdout
    backups = list((tmp_path / "hub-backups").glob("before-migration-*.tar"))
    assert len(backups) == 1 and tarfile.is_tarfile(backups[0])  # taken before the upgrade
    after = counts(data_dir / "hub.db")
    assert {k: v for k, v in after.items() if k in before} == before  # every record kept
    assert all(after[k] == 0 for k in set(after) - set(before))  # tables added since: empty
    with sqlite3.connect(data_dir / "hub.db") as connection:
        stages = connection.execute("SELECT version, stage FROM model_versions ORDER BY 1")
        assert stages.fetchall() == [(1, "archived"), (2, "staging"), (3, "production")]
    current = appliance("hub", "db", "current", "--data-dir", str(data_dir))
    assert current.returncode == 0 and "made before migrations" not in current.stdout
    check = appliance("hub", "db", "check", "--data-dir", str(data_dir))
    assert check.returncode == 0, check.stdout
    verified = appliance("audit", "verify", "--data-dir", str(data_dir))
    assert verified.returncode == 0, verified.stdout + verified.stderr

    refused = appliance("hub", "serve", "--data-dir", str(data_dir), "--port", str(free_port()))
    assert refused.returncode == 2 and "its private key signing.key is not" in refused.stderr
    set_key_aside(data_dir)
    hub = hub_process(data_dir)
    hub.start()
    try:
        hub.wait_healthy()
    finally:
        hub.stop()
    assert counts(data_dir / "hub.db")["model_versions"] == 3


def test_a_hub_on_a_database_from_a_newer_release_refuses_to_start_and_says_why(
    tmp_path: Path,
) -> None:
    data_dir = _hub_copy(tmp_path)
    assert appliance("hub", "db", "upgrade", "--data-dir", str(data_dir)).returncode == 0
    with sqlite3.connect(data_dir / "hub.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")

    served = appliance("hub", "serve", "--data-dir", str(data_dir), "--port", "0")

    assert served.returncode != 0
    assert "9999" in served.stderr and "newer release" in served.stderr
    assert "Traceback" not in served.stderr
    backups = set((tmp_path / "hub-backups").glob("*.tar"))

    upgraded = appliance("hub", "db", "upgrade", "--data-dir", str(data_dir))

    assert upgraded.returncode != 0
    assert "9999" in upgraded.stderr and "newer release" in upgraded.stderr
    assert "Traceback" not in upgraded.stderr
    assert set((tmp_path / "hub-backups").glob("*.tar")) == backups  # refused before backing up


def test_the_same_hub_on_postgresql_upgrades_intact(tmp_path: Path, postgres_database: str) -> None:
    """Release 0.1.0's records, put in PostgreSQL by its create_all, upgrade the same way."""
    from sqlalchemy import func, insert, select, text
    from sqlmodel import SQLModel

    import hub.tables  # noqa: F401  (every table on the metadata)
    from hub.db import make_engine
    from tests.harness.schema import baseline_tables

    data_dir = _hub_copy(tmp_path)
    url = postgres_database
    target, source = make_engine(url), make_engine(f"sqlite:///{data_dir / 'hub.db'}")
    try:
        baseline = baseline_tables()
        SQLModel.metadata.create_all(target, tables=baseline)  # what 0.1.0 did on PostgreSQL
        before: dict[str, int] = {}
        with source.connect() as read, target.begin() as write:
            for table in baseline:
                rows = [dict(r) for r in read.execute(select(table)).mappings()]
                before[table.name] = len(rows)
                if rows:
                    write.execute(insert(table), rows)
                    if "id" in table.c:  # as if the rows had been inserted one by one
                        write.execute(
                            text("SELECT setval(pg_get_serial_sequence(:t, 'id'), :n)"),
                            {"t": f'"{table.name}"', "n": max(r["id"] for r in rows)},
                        )
        env = {**os.environ, "APPLIANCE_DATABASE_URL": url}

        upgraded = appliance("hub", "db", "upgrade", "--data-dir", str(data_dir), env=env)

        assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
        with target.connect() as read:
            after = {
                t.name: read.execute(select(func.count()).select_from(t)).scalar_one()
                for t in SQLModel.metadata.sorted_tables
            }
        assert {k: v for k, v in after.items() if k in before} == before
        assert before["audit_entries"] == 76
        assert all(after[k] == 0 for k in set(after) - set(before))  # added since: empty
        check = appliance("hub", "db", "check", "--data-dir", str(data_dir), env=env)
        assert check.returncode == 0, check.stdout
        verified = appliance("audit", "verify", "--data-dir", str(data_dir), env=env)
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        target.dispose()
        source.dispose()
