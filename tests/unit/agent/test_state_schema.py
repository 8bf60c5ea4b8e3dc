"""Issue 16, item 2: an agent's state on disk carries a schema version and migrates
forward; release 0.1.0's state (which wrote none) is version 1; a newer release's state is
refused; the outbox versions its own tables with PRAGMA user_version."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from agent import outbox as outbox_module
from agent import state_schema
from agent.outbox import Outbox
from appliance.errors import ConfigError, StorageError


def _version(data_dir: Path) -> int:
    return int(json.loads((data_dir / state_schema.SCHEMA_FILE).read_text())["schema"])


def test_a_new_data_directory_is_stamped_with_this_releases_version(tmp_path: Path) -> None:
    assert state_schema.prepare(tmp_path / "agent") == state_schema.CURRENT
    assert _version(tmp_path / "agent") == state_schema.CURRENT


def test_release_0_1_0s_state_is_version_1_and_is_left_as_it_was(tmp_path: Path) -> None:
    (tmp_path / "identity.json").write_text('{"agent_id": 7}')
    (tmp_path / "state.json").write_text('{"models": {}}')

    state_schema.prepare(tmp_path)

    assert _version(tmp_path) == 1
    assert (tmp_path / "identity.json").read_text() == '{"agent_id": 7}'


def test_state_a_newer_release_wrote_is_refused(tmp_path: Path) -> None:
    (tmp_path / state_schema.SCHEMA_FILE).write_text('{"schema": 99}')
    with pytest.raises(ConfigError, match="version 99, newer"):
        state_schema.prepare(tmp_path)
    with pytest.raises(ConfigError, match="version 99, newer"):
        state_schema.check(tmp_path)  # what a serving process does


def test_a_later_migration_runs_once_and_a_failed_one_runs_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state_schema.prepare(tmp_path)  # version 1
    runs: list[Path] = []
    power_cut = [True]

    def to_2(data_dir: Path) -> None:
        runs.append(data_dir)
        if power_cut.pop(0) if power_cut else False:
            raise OSError("power cut")

    monkeypatch.setattr(state_schema, "CURRENT", 2)
    monkeypatch.setitem(state_schema.MIGRATIONS, 2, to_2)

    with pytest.raises(OSError, match="power cut"):
        state_schema.prepare(tmp_path)
    assert _version(tmp_path) == 1  # not marked done

    assert state_schema.prepare(tmp_path) == 2
    assert state_schema.prepare(tmp_path) == 2
    assert _version(tmp_path) == 2 and len(runs) == 2  # once failed, once done, then never


def test_an_unreadable_version_file_is_named(tmp_path: Path) -> None:
    (tmp_path / state_schema.SCHEMA_FILE).write_text("{not json")
    with pytest.raises(ConfigError, match=r"state_schema\.json"):
        state_schema.prepare(tmp_path)


def _user_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def test_an_outbox_from_release_0_1_0_keeps_its_reports_and_gets_a_version(
    tmp_path: Path,
) -> None:
    path = tmp_path / outbox_module.OUTBOX_FILE
    with sqlite3.connect(path) as db:  # what release 0.1.0 made: the tables, no version
        db.executescript(outbox_module._SCHEMA)
        db.execute(
            "INSERT INTO reports (key, kind, body, created_at) VALUES ('k1', 'drift', '{}', 1)"
        )

    box = Outbox(tmp_path)
    try:
        assert [r.key for r in box.pending(10)] == ["k1"]
    finally:
        box.close()
    assert _user_version(path) == outbox_module.SCHEMA_VERSION


def test_an_outbox_a_newer_release_wrote_is_refused(tmp_path: Path) -> None:
    Outbox(tmp_path).close()
    path = tmp_path / outbox_module.OUTBOX_FILE
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 42")
    with pytest.raises(StorageError, match="version 42, newer"):
        Outbox(tmp_path)


def test_an_outbox_migration_runs_in_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Outbox(tmp_path).close()
    monkeypatch.setattr(outbox_module, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(
        outbox_module._MIGRATIONS,
        2,
        ("ALTER TABLE reports ADD COLUMN attempts INTEGER", "SELECT no_such_function()"),
    )
    with pytest.raises(sqlite3.OperationalError):
        Outbox(tmp_path)
    path = tmp_path / outbox_module.OUTBOX_FILE
    with sqlite3.connect(path) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(reports)")]
    assert "attempts" not in columns and _user_version(path) == 1
