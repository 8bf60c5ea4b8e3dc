"""The host layout ``appliance upgrade`` switches releases in, and the settings it reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cli.upgrade.command import host_prefix, read_env_file
from appliance.cli.upgrade.errors import UpgradeError
from appliance.cli.upgrade.journal import Journal, Phase
from appliance.cli.upgrade.layout import RELEASE_MARKER, Installation


def _venv(path: Path, marker: str | None) -> Path:
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "python").write_text("#!/bin/sh\n")
    if marker:
        (path / RELEASE_MARKER).write_text(marker + "\n")
    return path


def test_a_venv_folder_of_the_earlier_layout_is_adopted_and_linked(tmp_path: Path) -> None:
    install = Installation(tmp_path)
    _venv(install.venv, "appliance-hub-0.1.0 abc")

    current = install.current()

    assert install.venv.is_symlink() and current == install.venvs / "appliance-hub-0.1.0-abc"
    assert (install.venv / "bin" / "python").exists()  # its scripts' path still reaches it


def test_switching_moves_both_links_and_leaves_the_folders(tmp_path: Path) -> None:
    install = Installation(tmp_path)
    old = _venv(install.venvs / "old", "appliance-hub-0.1.0 a")
    new = _venv(install.venvs / "new", "appliance-hub-0.1.1 b")
    install.switch(old, None)
    assert install.current() == old and not install.previous.exists()

    install.switch(new, old)

    assert install.current() == new and install.previous.resolve() == old
    assert old.is_dir() and not list(tmp_path.glob(".*.new"))


def test_pruning_keeps_the_two_linked_releases_and_removes_the_rest(tmp_path: Path) -> None:
    install = Installation(tmp_path)
    slots = ["appliance-hub-0.1.0-a", "appliance-hub-0.1.1-b", "appliance-hub-0.1.2-c"]
    old, current, failed = (_venv(install.venvs / name, None) for name in slots)
    for name in slots:
        (install.releases / name / "wheels").mkdir(parents=True)
    (install.releases / ".unpack-x1y2").mkdir()  # an unpack a kill cut short
    install.switch(current, old)

    removed = install.prune()

    assert sorted(p.name for p in removed) == [".unpack-x1y2", slots[2], slots[2]]
    assert sorted(p.name for p in install.venvs.iterdir()) == slots[:2]
    assert sorted(p.name for p in install.releases.iterdir()) == slots[:2]
    assert not failed.exists() and install.current() == current
    assert install.prune() == []


def test_a_fresh_host_has_no_current_release(tmp_path: Path) -> None:
    assert Installation(tmp_path).current() is None


def test_the_journal_reads_back_what_it_recorded(tmp_path: Path) -> None:
    path = tmp_path / "upgrade.json"
    journal = Journal.begin(path, "appliance-hub-0.1.1", tmp_path / "a", tmp_path / "b", None)
    journal.at(path, Phase.MIGRATING, backup="/backups/x.tar")

    read = Journal.read(path)

    assert read is not None and read.phase is Phase.MIGRATING
    assert (read.backup, read.old, read.release) == (
        "/backups/x.tar",
        str(tmp_path / "a"),
        "appliance-hub-0.1.1",
    )
    assert path.stat().st_mode & 0o777 == 0o600


def test_an_environment_file_reads_as_systemd_reads_it(tmp_path: Path) -> None:
    env = tmp_path / "hub.env"
    env.write_text('# settings\n\nAPPLIANCE_HUB_PORT=8710\nAPPLIANCE_ZONE="ae-auh"\n')
    assert read_env_file(env) == {"APPLIANCE_HUB_PORT": "8710", "APPLIANCE_ZONE": "ae-auh"}
    assert read_env_file(tmp_path / "missing.env") == {}
    env.write_text("not a setting\n")
    with pytest.raises(UpgradeError, match=r"hub\.env:1"):
        read_env_file(env)


def test_no_prefix_is_the_root_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the playbooks pass --prefix "" from the login's home

    assert host_prefix("") / "opt/appliance" == Path("/opt/appliance")
    assert host_prefix("/srv/a") / "opt/appliance" == Path("/srv/a/opt/appliance")
    assert host_prefix("rel") == tmp_path / "rel"
