"""Issue 16: what an agent host's upgrade keeps safe (its data directory), and how the
upgrade tells an agent host from a hub host."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from appliance.cli.upgrade.agent_data import KEEP, AgentData
from appliance.cli.upgrade.command import read_request
from appliance.cli.upgrade.errors import UpgradeError
from appliance.cli.upgrade.install import archive_kind
from appliance.wire.upgrades import ARCHIVES, UpgradeRequest


def _agent_state(data: Path) -> None:
    (data / "bundles" / "tiny" / "1").mkdir(parents=True)
    (data / "bundles" / "tiny" / "1" / "bundle.sealed").write_bytes(b"sealed model")
    (data / "state.json").write_text('{"slots": {"tiny": 1}}')
    (data / "state_schema.json").write_text('{"schema": 1}')
    (data / "outbox.sqlite").write_bytes(b"rows")
    (data / ARCHIVES).mkdir()
    (data / ARCHIVES / "appliance-agent-0.1.1.tar").write_bytes(b"a fetched release")


def test_the_backup_copies_state_and_links_bundles_and_fetched_releases(tmp_path: Path) -> None:
    data = tmp_path / "agent"
    _agent_state(data)
    backup = AgentData(data).backup("appliance-agent-0.1.1")

    assert backup.parent == tmp_path / "agent.backups"
    assert backup.name.startswith("before-appliance-agent-0.1.1-")
    sealed = "bundles/tiny/1/bundle.sealed"
    fetched = f"{ARCHIVES}/appliance-agent-0.1.1.tar"
    for immutable in (sealed, fetched):  # no space
        assert (backup / immutable).stat().st_ino == (data / immutable).stat().st_ino
    assert (backup / "state.json").stat().st_ino != (data / "state.json").stat().st_ino
    (data / "outbox.sqlite").write_bytes(b"changed by the new release")
    assert (backup / "outbox.sqlite").read_bytes() == b"rows"


def test_restore_puts_the_old_state_back_and_keeps_the_new_aside(tmp_path: Path) -> None:
    data = tmp_path / "agent"
    _agent_state(data)
    agent = AgentData(data)
    backup = agent.backup("appliance-agent-0.1.2")
    # what a newer release does as it starts: migrates the state, installs a new bundle
    (data / "state_schema.json").write_text('{"schema": 2}')
    (data / "bundles" / "tiny" / "2").mkdir()
    (data / "bundles" / "tiny" / "2" / "bundle.sealed").write_bytes(b"v2")

    kept = agent.restore(backup)

    assert json.loads((data / "state_schema.json").read_text()) == {"schema": 1}
    assert not (data / "bundles" / "tiny" / "2").exists()
    assert (data / "bundles" / "tiny" / "1" / "bundle.sealed").read_bytes() == b"sealed model"
    assert kept.name.startswith("agent.failed-")
    assert json.loads((kept / "state_schema.json").read_text()) == {"schema": 2}
    assert backup.is_dir(), "the backup stays for another recovery"
    again = agent.restore(backup)  # a second rollback (recover after a cut-off one)
    assert again != kept and again.is_dir()


def test_only_the_last_backups_are_kept(tmp_path: Path) -> None:
    data = tmp_path / "agent"
    _agent_state(data)
    agent = AgentData(data)
    made = [agent.backup(f"appliance-agent-0.1.{n}") for n in range(KEEP + 2)]
    left = sorted(p.name for p in agent.backups.iterdir())
    assert left == sorted(p.name for p in made[-KEEP:])


def _archive(path: Path, manifest: dict[str, str]) -> Path:
    with tarfile.open(path, "w") as tar:
        body = json.dumps(manifest).encode()
        info = tarfile.TarInfo("appliance-agent-0.1.1/MANIFEST.json")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    return path


def test_the_archive_says_which_kind_of_host_it_upgrades(tmp_path: Path) -> None:
    assert archive_kind(_archive(tmp_path / "a.tar", {"kind": "agent"})) == "agent"
    with pytest.raises(UpgradeError, match="names no hub or agent release"):
        archive_kind(_archive(tmp_path / "b.tar", {"kind": "printer"}))
    (tmp_path / "c.tar").write_bytes(b"not a tar")
    with pytest.raises(UpgradeError, match="cannot read"):
        archive_kind(tmp_path / "c.tar")


def test_an_agent_request_may_name_only_an_archive_in_its_upgrades_folder(tmp_path: Path) -> None:
    """The upgrader runs as root; the agent writes the request. A request naming a file
    elsewhere (a link out, a path up) is refused before anything is read from it."""
    data = tmp_path / "agent"
    (data / ARCHIVES).mkdir(parents=True)
    (data / ARCHIVES / "appliance-agent-0.1.1.tar").write_bytes(b"tar")
    (tmp_path / "secret").write_text("root's")
    request = tmp_path / "request.json"

    def asked(archive: str) -> UpgradeRequest:
        body = {"version": "0.1.1", "archive": archive, "archive_sha256": "0" * 64}
        request.write_text(json.dumps(body))
        return read_request(request, data)

    assert asked("appliance-agent-0.1.1.tar").version == "0.1.1"
    for hostile in ("../../secret", str(tmp_path / "secret"), "..", "", "missing.tar"):
        with pytest.raises(UpgradeError, match="names no archive"):
            asked(hostile)
    request.write_text("{not json")
    with pytest.raises(UpgradeError, match="cannot read the upgrade request"):
        read_request(request, data)
