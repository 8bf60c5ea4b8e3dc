"""The offline installer end to end on this machine.

Builds both archives (hub + worker, agent) with a throw-away release key, checks that
``appliance-build verify`` accepts them and refuses one with a flipped byte, then runs
``ansible/site.yml`` over a local connection: a hub host (also a worker) and an agent host,
each under its own throw-away ``appliance_prefix``, with ``appliance_manage_services=false``
(PID 1 here is not systemd, so no unit is started and the steps that need a running hub,
enrolment and sign-in, are skipped). The playbook runs in a network namespace of its own
(``unshare -n``) where one can be made, with ``PIP_NO_INDEX=1`` either way: pip installs
from the archives' wheelhouses or fails. A second run must report ``changed=0``; a rebuilt
agent archive is then installed as an upgrade, the old virtual environment kept as
``venv.previous``.

Collected wheels are cached in ``.cache/appliance-build/wheels`` (ignored by git), so a
second run resolves and builds without an index (``--prefer-offline``) in seconds; the
first run on a machine fetches them (local registries and PyPI).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.cli.release.os_packages import DEBIAN_12
from tests.harness.ansible import HAS_ANSIBLE, run_playbook
from tests.harness.releases import cached_os_packages

pytestmark = [
    pytest.mark.integration,
    pytest.mark.release,
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.xdist_group("release-archives"),  # one process fills the wheel cache
]

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "appliance-build" / "wheels"
VERSION = "0.1.0"
BIN = Path(sys.executable).parent
BASE_PYTHON = (
    Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
)
RECAP = re.compile(
    r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M
)


@dataclass(frozen=True)
class Built:
    out: Path
    public_key: Path
    hub: Path
    agent: Path


def _build(out: Path, *kinds: str, key: list[str], epoch: int) -> None:
    started = time.monotonic()
    debs = cached_os_packages()
    subprocess.run(
        [
            *(sys.executable, "-m", "appliance.cli.release", "build", *kinds, "--out", str(out)),
            *(*key, "--wheel-cache", str(CACHE), "--prefer-offline", "--project", str(ROOT)),
            *(("--os-packages", str(debs)) if debs else ()),
        ],
        check=True,
        timeout=600,
        env={**os.environ, "SOURCE_DATE_EPOCH": str(epoch)},
    )
    print(f"built {', '.join(kinds)} in {time.monotonic() - started:.0f} s")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    out = tmp_path_factory.mktemp("dist")
    _build(out, "agent", "hub", key=["--throwaway-key"], epoch=1_790_000_000)
    result = Built(
        out=out,
        public_key=out / "throwaway-key" / "release.pub",
        hub=out / f"appliance-hub-{VERSION}.tar",
        agent=out / f"appliance-agent-{VERSION}.tar",
    )
    for archive in (result.hub, result.agent):
        print(f"{archive.name}: {archive.stat().st_size / 1e6:.1f} MB")
    return result


def test_archives_carry_python3_11_venv_for_debian_12_hosts(built: Built) -> None:
    if cached_os_packages() is None:
        pytest.skip("apt could not fetch the Debian 12 packages here")
    for archive in (built.hub, built.agent):
        with tarfile.open(archive) as tar:
            top = archive.name.removesuffix(".tar")
            names = tar.getnames()
            manifest = json.loads(tar.extractfile(f"{top}/MANIFEST.json").read())  # type: ignore[union-attr]
            index = tar.extractfile(f"{top}/os-packages/{DEBIAN_12}/Packages").read().decode()  # type: ignore[union-attr]
        carried = manifest["os_packages"][DEBIAN_12]
        assert any(name.startswith("python3.11-venv_") for name in carried)
        # what a minimal host lacks too (python3-pip-whl needs it; found on a minimal VM)
        assert any(name.startswith("ca-certificates_") for name in carried)
        assert all(f"{top}/os-packages/{DEBIAN_12}/{name}" in names for name in carried)
        assert "Package: python3.11-venv\n" in index and "Package: python3-pip-whl\n" in index


def _verify(archive: Path, key: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "appliance.cli.release",
            "verify",
            str(archive),
            "--public-key",
            str(key),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_archives_hold_what_each_role_needs(built: Built) -> None:
    with tarfile.open(built.agent) as tar:
        agent = tar.getnames()
    with tarfile.open(built.hub) as tar:
        hub = tar.getnames()
        hub_lock = tar.extractfile(f"appliance-hub-{VERSION}/requirements-hub.txt").read().decode()  # type: ignore[union-attr]
    top = f"appliance-agent-{VERSION}/"
    for name in (
        "SHA256SUMS",
        "SHA256SUMS.sig",
        "MANIFEST.json",
        "requirements-agent.txt",
        "requirements-agent-nodeps.txt",
        "systemd/appliance-agent.service",
        "systemd/appliance-agent-upgrade.path",
        "systemd/appliance-agent-upgrade.service",
        "config/agent.env.example",
        "ansible/site.yml",
        "ansible/roles/common/files/verify_archive.py",
    ):
        assert top + name in agent
    agent_wheels = [n.rsplit("/", 1)[-1] for n in agent if "/wheels/" in n]
    assert any(w.startswith("alibi_detect-") for w in agent_wheels)
    assert any(w.startswith("onnxruntime-") for w in agent_wheels)
    assert not any(w.startswith(("torch-", "duckdb-", "pyarrow-")) for w in agent_wheels)
    hub_wheels = [n.rsplit("/", 1)[-1] for n in hub if "/wheels/" in n]
    assert any(w.startswith("torch-2.13.0+cpu") for w in hub_wheels), "the CPU build of torch"
    assert f"appliance-hub-{VERSION}/systemd/appliance-worker.service" in hub
    assert not any("agent-upgrade" in name for name in hub)
    assert "torch==2.13.0+cpu \\\n    --hash=sha256:" in hub_lock


def test_verify_accepts_the_archives_and_refuses_a_flipped_byte(
    built: Built, tmp_path: Path
) -> None:
    for archive in (built.agent, built.hub):
        good = _verify(archive, built.public_key)
        assert good.returncode == 0, good.stderr
        assert "verified" in good.stdout
    tampered = tmp_path / built.agent.name
    shutil.copyfile(built.agent, tampered)
    with tarfile.open(tampered) as tar:
        member = next(m for m in tar if "/wheels/numpy-" in m.name)
    with tampered.open("r+b") as handle:
        handle.seek(member.offset_data + member.size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    bad = _verify(tampered, built.public_key)
    assert bad.returncode == 1
    assert f"{member.name} was altered" in bad.stderr
    other = tmp_path / "other"
    subprocess.run(
        [sys.executable, "-m", "appliance.cli.release", "keygen", "--out", str(other)],
        check=True,
        capture_output=True,
    )
    assert _verify(built.agent, other / "release.pub").returncode == 1


@pytest.fixture(scope="module")
def site(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("site")
    inventory = root / "inventory.yml"
    inventory.write_text(
        f"""
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: {sys.executable}
    appliance_archive_dir: {built.out}
    appliance_release_key: {built.public_key}
    appliance_python: {BASE_PYTHON}
  children:
    hub:
      hosts:
        hub1:
          appliance_prefix: {root}/hub1
          appliance_admin_password: correct-horse-battery-staple
          appliance_bootstrap_users:
            - {{name: alice, roles: [ml-engineer], password: alice-password-long}}
    workers:
      hosts:
        hub1:
    agents:
      hosts:
        edge1:
          appliance_prefix: {root}/edge1
          appliance_zone: ae-dxb
          appliance_agent_group: pilot
"""
    )
    yield root


def _playbook(site: Path, *args: str) -> dict[str, tuple[int, int]]:
    """Run a playbook offline; return ``host → (changed, failed)`` from its recap."""
    started = time.monotonic()
    result = run_playbook(site, *args, "-e", "appliance_manage_services=false")
    print(f"{' '.join(args)}: {time.monotonic() - started:.0f} s")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    recap = {m[0]: (int(m[2]), int(m[4])) for m in RECAP.findall(result.stdout)}
    assert recap, result.stdout[-3000:]
    return recap


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.skipif(
    not HAS_ANSIBLE, reason="ansible-core is not installed (pip install -e '.[dev]')"
)
def test_site_installs_offline_idempotently_and_upgrades(built: Built, site: Path) -> None:
    # A step that handles passwords (no_log) once hid why it failed: now it says, and
    # the password stays hidden. The operator mends the inventory and runs again.
    inventory = site / "inventory.yml"
    good = inventory.read_text()
    inventory.write_text(
        good.replace(
            "- {name: alice,",
            "- {name: bob, roles: [viewer], password: Qx7-shorty}\n            - {name: alice,",
        )
    )
    refused = run_playbook(site, "site.yml", "-e", "appliance_manage_services=false")
    assert refused.returncode != 0
    said = " ".join(refused.stdout.split())
    assert "creating a user (bob) failed with exit" in said, said[-3000:]
    assert "must be at least 12 characters" in said
    assert "Qx7-shorty" not in refused.stdout + refused.stderr
    inventory.write_text(good)

    first = _playbook(site, "site.yml")
    assert first["hub1"][0] > 0 and first["edge1"][0] > 0

    hub, edge = site / "hub1", site / "edge1"
    for prefix in (hub, edge):
        version = subprocess.run(
            [str(prefix / "opt/appliance/venv/bin/appliance"), "--version"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert version.stdout.strip() == f"appliance {VERSION}"
    agent_python = edge / "opt/appliance/venv/bin/python"
    probe = (
        "import alibi_detect, onnxruntime, agent.app; import importlib.util as u; "
        "print(u.find_spec('torch'))"
    )
    assert (
        subprocess.run(
            [str(agent_python), "-c", probe], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "None"
    ), "agents get no torch"

    assert _mode(hub / "etc/appliance/hub.env") == 0o640
    assert _mode(hub / "etc/appliance/worker.env") == 0o640
    assert _mode(edge / "etc/appliance/agent.env") == 0o640
    for data in (
        hub / "var/lib/appliance/hub",
        hub / "var/lib/appliance/worker",
        edge / "var/lib/appliance/agent",
    ):
        assert _mode(data) == 0o750, data
    hub_data = hub / "var/lib/appliance/hub"
    for key in ("ca/ca.key", "tls/hub.key", "keys/signing.key"):
        assert _mode(hub_data / key) == 0o600, key
    assert (edge / "etc/appliance/trust/hub-ca.crt").read_bytes() == (
        hub_data / "ca/ca.crt"
    ).read_bytes()
    assert (edge / "etc/appliance/trust/root.json").read_bytes() == (
        hub_data / "tuf/metadata/1.root.json"
    ).read_bytes()
    env = (edge / "etc/appliance/agent.env").read_text()
    assert f"APPLIANCE_TRUSTED_ROOT={edge}/etc/appliance/trust/root.json" in env
    unit = (edge / "etc/systemd/system/appliance-agent.service").read_text()
    assert f"ExecStart={edge}/opt/appliance/venv/bin/appliance agent serve" in unit
    assert f"--data-dir {edge}/var/lib/appliance/agent" in unit
    # the agent's host upgrader: started by the path unit when the agent asks, paths and
    # key under the prefix (root of the prefixed install, not the unprefixed hub's)
    units = edge / "etc/systemd/system"
    watch = (units / "appliance-agent-upgrade.path").read_text()
    assert f"PathExists={edge}/var/lib/appliance/agent/upgrade-request.json" in watch
    upgrader = (units / "appliance-agent-upgrade.service").read_text()
    assert (
        f"ExecStart={edge}/opt/appliance/venv/bin/appliance upgrade --request "
        f"{edge}/var/lib/appliance/agent/upgrade-request.json --release-key "
        f"{edge}/etc/appliance/trust/release.pub --root {edge}/opt/appliance "
    ) in upgrader
    for host in (hub, edge):
        pinned = host / "etc/appliance/trust/release.pub"
        assert pinned.read_bytes() == built.public_key.read_bytes()
        assert _mode(pinned) == 0o644  # the hub's user reads it
    hub_env = (hub / "etc/appliance/hub.env").read_text()
    assert f"APPLIANCE_RELEASE_KEY={hub}/etc/appliance/trust/release.pub" in hub_env

    second = _playbook(site, "site.yml")
    assert second == {"hub1": (0, 0), "edge1": (0, 0)}, "a second run changes nothing"

    # An upgrade: a rebuilt agent archive replaces the venv, the old one stays as venv.previous.
    _build(
        built.out,
        "agent",
        key=["--signing-key", str(built.out / "throwaway-key/release.key")],
        epoch=1_790_000_100,
    )
    upgraded = _playbook(site, "site.yml", "--limit", "edge1")
    assert upgraded["edge1"][0] > 0
    venvs = edge / "opt/appliance"
    assert (venvs / "venv.previous/bin/appliance").exists()
    new_marker = (venvs / "venv/.appliance-release").read_text()
    old_marker = (venvs / "venv.previous/.appliance-release").read_text()
    assert new_marker != old_marker and new_marker.startswith(f"appliance-agent-{VERSION} ")

    removed = _playbook(site, "remove.yml")
    assert all(failed == 0 for _, failed in removed.values())
    assert not (venvs / "venv").exists() and not (venvs / "venv.previous").exists()
    assert not list(units.iterdir()), "every unit goes, the agent's upgrader's too"
    assert (edge / "var/lib/appliance/agent").is_dir(), "data stays unless remove_data=true"
    assert (hub_data / "ca/ca.key").exists()
