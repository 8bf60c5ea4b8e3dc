"""The systemd units pass ``systemd-analyze verify`` and keep their security exposure low,
and the services tell systemd when they are ready."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.sd_notify import notify
from appliance.wire.upgrades import REQUEST_FILE

UNITS = sorted((Path(__file__).resolve().parents[3] / "systemd").glob("*.service"))
INSTALLED = "/opt/appliance/venv/bin/appliance"
MAX_EXPOSURE = {
    "appliance-hub": 1.2,
    "appliance-agent": 1.2,
    "appliance-worker": 1.5,
    "appliance-agent-upgrade": 2.4,
}
"""systemd-analyze security scores: 0 is locked down, 10 is fully exposed; 'OK' is < 2.5
(recorded in systemd/README.md; the worker needs the GPU devices, the agent's upgrader
runs as root to install software)."""

analyze = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(analyze is None, reason="systemd-analyze is not installed")


def _local_copy(unit: Path, tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's command (verify wants it real)."""
    here = Path(sys.executable).with_name("appliance")
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace(INSTALLED, str(here)))
    return copy


def test_every_role_has_a_unit() -> None:
    assert [u.stem for u in UNITS] == [
        "appliance-agent-upgrade",
        "appliance-agent",
        "appliance-hub",
        "appliance-worker",
    ]


@needs_analyze
def test_the_agent_upgrade_path_unit_starts_the_upgrader_when_the_agent_asks(
    tmp_path: Path,
) -> None:
    folder = UNITS[0].parent  # systemd/
    path = folder / "appliance-agent-upgrade.path"
    service = _local_copy(folder / "appliance-agent-upgrade.service", tmp_path)
    (tmp_path / path.name).write_text(path.read_text())
    verified = subprocess.run(
        [str(analyze), "verify", str(tmp_path / path.name), str(service)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr
    watch = path.read_text()
    # the very file the agent writes (appliance.wire.upgrades), in the agent's data dir
    assert f"PathExists=/var/lib/appliance/agent/{REQUEST_FILE}\n" in watch
    assert "Unit=appliance-agent-upgrade.service\n" in watch
    command = service.read_text()
    assert f"--request /var/lib/appliance/agent/{REQUEST_FILE} " in command
    assert "--release-key /etc/appliance/trust/release.pub " in command


@needs_analyze
@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.stem)
def test_unit_verifies_and_is_hardened(unit: Path, tmp_path: Path) -> None:
    copy = _local_copy(unit, tmp_path)
    verified = subprocess.run(
        [str(analyze), "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr
    security = subprocess.run(
        [str(analyze), "security", "--offline=true", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
    assert score is not None, security.stdout[-500:] + security.stderr
    assert float(score.group(1)) <= MAX_EXPOSURE[unit.stem], security.stdout[-2000:]


def test_notify_sends_one_datagram_to_the_socket_systemd_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert notify("READY=1")
        assert systemd.recv(64) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not notify("READY=1")  # outside systemd: nothing, no error
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert not notify("READY=1")  # systemd went away: logged, not raised
