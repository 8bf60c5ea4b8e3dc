"""Issue 16: ``appliance upgrade`` on an agent host, with real agent archives of this tree.

Three agent releases signed with one release key: N (this tree), N+1 (a version later)
and N+2, whose state layout is newer (it migrates the agent's state to version 2 as it
starts) and whose ``/v2`` answers 500. The host is a folder (``--root``) holding the data
directory of an agent enrolled with the site's real hub and serving its model in
production; the agent is stopped and started by the operator's own commands, a real
``appliance agent serve`` of whichever release ``venv`` points at.

1. N is installed (the agent, stopped, keeps its data) and upgrades itself to N+1: same
   identity, the model served again.
2. The upgrade to N+2 runs to its health check, which fails after N+2 has migrated the
   state; the upgrade puts N+1 and the state it wrote back by itself (N+1 refuses state a
   newer release wrote, so without the restore it could not start again).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from appliance.cli.demo.processes import ServiceProcess
from appliance.cli.demo.site import Site
from appliance.client.hub import HubClient
from appliance.wire.fleet import NewAgentUpgrade
from appliance.wire.upgrades import RESULT_FILE
from tests.harness.models import make_reference_npy
from tests.harness.releases import BASE_PYTHON, build_release, edited, release_key, upgrade_argv
from tests.harness.site import infer_rows, publish, running_hub, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.release,
    pytest.mark.slow,
    pytest.mark.timeout(1200),
    pytest.mark.xdist_group("release-archives"),
]

NEWER_STATE = (
    ("agent/state_schema.py", "CURRENT = 1\n", "CURRENT = 2\n"),
    (
        "agent/state_schema.py",
        "MIGRATIONS: dict[int, Migration] = {}\n",
        "MIGRATIONS: dict[int, Migration] = {2: lambda data_dir: None}\n",
    ),
)
BROKEN_METADATA = (
    "agent/app.py",
    "    async def server_metadata() -> dict[str, object]:\n",
    "    async def server_metadata() -> dict[str, object]:\n"
    '        raise RuntimeError("this release is broken on purpose")\n',
)


@dataclass(frozen=True)
class Releases:
    public_key: Path
    n: Path
    n1: Path
    n2: Path


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Releases:
    work = tmp_path_factory.mktemp("agent-releases")
    private, public = release_key(work / "key")
    trees = {
        "n": edited(work / "n", "0.1.0"),
        "n1": edited(work / "n1", "0.1.1"),
        "n2": edited(work / "n2", "0.1.2", replace=(*NEWER_STATE, BROKEN_METADATA)),
    }
    built = {}
    for name, tree in trees.items():
        (work / "out" / name).mkdir(parents=True)
        built[name] = build_release(tree, work / "out" / name, private, kind="agent")
    return Releases(public_key=public, **built)


@dataclass(frozen=True)
class AgentHost:
    root: Path
    agent: ServiceProcess
    """The agent as the harness enrolled it: its arguments and settings, its data."""
    pidfile: Path
    group: str
    env: dict[str, str] = field(default_factory=dict)
    """Settings the agent runs with beyond the harness's (the upgrade command)."""

    @property
    def data(self) -> Path:
        return Path(self.agent.args[self.agent.args.index("--data-dir") + 1])

    def argv(self, appliance_bin: Path, *args: str) -> list[str]:
        serve = list(self.agent.args)
        if "--enrol-token" in serve:  # enrolled already: its identity is kept
            at = serve.index("--enrol-token")
            del serve[at : at + 2]
        return upgrade_argv(
            appliance_bin,
            *args,
            root=self.root,
            data=self.data,
            serve=serve,
            service="agent",
            pidfile=self.pidfile,
            health_url=f"{self.agent.url}/v2",
            health_timeout=90,
        )

    def upgrade(self, appliance_bin: Path, *args: str) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
        return subprocess.run(
            self.argv(appliance_bin, *args),
            capture_output=True,
            text=True,
            timeout=900,
            env={**clean, **self.agent.env, **self.env},
        )

    def metadata(self) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(f"{self.agent.url}/v2", timeout=5).json()
        return answer

    def serves(self) -> bool:
        return infer_rows(self.agent.url, _rows()) == [200]

    def agent_id(self, admin: HubClient) -> int:
        return {a.name: a.id for a in admin.list_agents()}[self.agent.name]

    def state_version(self) -> int:
        return int(json.loads((self.data / "state_schema.json").read_text())["schema"])


def _rows() -> Any:
    return np.load(io.BytesIO(make_reference_npy()))[:4]


@pytest.fixture(scope="module")
def hub(site: Site, releases: Releases) -> Iterator[ServiceProcess]:
    """The site's hub, holding agent releases signed with the releases' key; its gates
    judged every 0.2 s."""
    env = {"APPLIANCE_RELEASE_KEY": str(releases.public_key), "APPLIANCE_ROLLOUT_CHECK_S": "0.2"}
    with running_hub(site, env=env) as proc:
        yield proc


@pytest.fixture(scope="module")
def published(engineer: HubClient, approver: HubClient) -> None:
    publish(engineer, approver)


@pytest.fixture(scope="module")
def installation_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One host's installation root for the module's agents, one after the other: a
    release's virtual environment, once built there, is taken again by the next test's
    upgrade to it (as on a host, where it is kept until pruned), not built again (about
    a minute of pip each on 2 cores)."""
    return tmp_path_factory.mktemp("agent-host") / "opt"


@pytest.fixture
def agent_host(
    tmp_path: Path,
    installation_root: Path,
    published: None,
    start_agent: Any,
    request: pytest.FixtureRequest,
) -> Iterator[AgentHost]:
    """An agent enrolled in a group of its own (named for the test), serving the model."""
    group = f"g{abs(hash(request.node.name)) % 100000}"
    enrolled = start_agent(f"edge-{group}", group=group)
    enrolled.stop()  # its data stays: the release installed next takes it over
    host = AgentHost(installation_root, enrolled, tmp_path / "agent.pid", group)
    try:
        yield host
    finally:
        if host.pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(host.pidfile.read_text()), signal.SIGKILL)


def test_an_agent_host_upgrades_and_a_failing_release_rolls_back(
    releases: Releases, agent_host: AgentHost, admin: HubClient
) -> None:
    key = ("--release-key", str(releases.public_key))
    host = agent_host
    enrolled = host.agent_id(admin)

    first = host.upgrade(Path(sys.executable).parent / "appliance", str(releases.n), *key)
    assert first.returncode == 0, first.stdout + first.stderr
    assert host.metadata()["version"] == "0.1.0"
    wait_until("release N to serve the model", host.serves)

    # 1. N upgrades itself to N+1: same identity, its model served again
    upgraded = host.upgrade(host.root / "venv/bin/appliance", str(releases.n1), *key)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    assert host.metadata()["version"] == "0.1.1"
    assert host.serves()
    assert host.agent_id(admin) == enrolled
    assert (host.root / "venv.previous").resolve().name.startswith("appliance-agent-0.1.0-")
    assert len(list((host.data.parent / f"{host.data.name}.backups").iterdir())) == 1

    # 2. N+2 migrates the state, then fails its health check: N+1 and its state come back
    failed = host.upgrade(host.root / "venv/bin/appliance", str(releases.n2), *key)
    assert failed.returncode != 0
    assert "rolled back" in failed.stderr and "Traceback" not in failed.stderr
    assert host.metadata()["version"] == "0.1.1"
    assert host.serves()
    assert host.state_version() == 1
    assert (host.root / "venv").resolve().name.startswith("appliance-agent-0.1.1-")
    assert not (host.root / "upgrade.json").exists()
    (left,) = host.data.parent.glob(f"{host.data.name}.failed-*")  # what N+2 left
    assert json.loads((left / "state_schema.json").read_text())["schema"] == 2
    # only the two linked releases keep their disk: N+2's virtual environment is gone
    linked = {(host.root / link).resolve().name for link in ("venv", "venv.previous")}
    assert {slot.name for slot in (host.root / "venvs").iterdir()} == linked
    assert {slot.name for slot in (host.root / "releases").iterdir()} == linked


def test_a_hub_archive_is_refused_on_an_agent_host(releases: Releases, tmp_path: Path) -> None:
    """The kind comes from the archive; told it is an agent host, a hub archive is refused
    before anything is stopped."""
    refused = subprocess.run(
        [
            *(str(Path(sys.executable).parent / "appliance"), "upgrade", str(releases.n)),
            *("--release-key", str(releases.public_key), "--kind", "hub"),
            *("--root", str(tmp_path / "opt"), "--data-dir", str(tmp_path / "hub")),
            *("--stop-command", "false", "--start-command", "false"),
            *("--python", str(BASE_PYTHON)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert refused.returncode != 0
    assert "is a release for agent hosts; this is a hub host" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_the_hub_upgrades_an_agent_that_then_fails_and_halts_the_next_upgrade(
    releases: Releases, agent_host: AgentHost, admin: HubClient
) -> None:
    """The agent itself: it finds the release in its assignments, fetches it from the hub
    and asks its host (here APPLIANCE_UPGRADE_COMMAND, as root would through systemd's
    path unit) to upgrade it; N+1 comes up; N+2 fails and rolls back, the agent says so,
    and the hub halts that upgrade."""
    key = ("--release-key", str(releases.public_key))
    host = agent_host
    running = host.root / "venv/bin/appliance"
    log = shlex.quote(str(host.root.parent / "upgrade.log"))
    host.env["APPLIANCE_UPGRADE_COMMAND"] = (
        f'{shlex.join(host.argv(running, *key))} --request "$APPLIANCE_UPGRADE_REQUEST" '
        f">> {log} 2>&1"
    )
    first = host.upgrade(Path(sys.executable).parent / "appliance", str(releases.n), *key)
    assert first.returncode == 0, first.stdout + first.stderr
    for archive in (releases.n1, releases.n2):
        with archive.open("rb") as handle:
            admin.upload_agent_release(handle)

    def upgrade_to(version: str) -> int:
        spec = NewAgentUpgrade(
            version=version, zone="ae-dxb", group=host.group, rings=[1.0], soak_s=0
        )
        return admin.start_agent_upgrade(spec).id

    # N+1: the agent upgrades itself; the hub sees it and completes the upgrade
    done = upgrade_to("0.1.1")
    wait_until(
        "the agent to upgrade itself and the hub to complete",
        lambda: admin.get_agent_upgrade(done).state == "completed",
        timeout=600,
    )
    assert host.metadata()["version"] == "0.1.1"
    wait_until("N+1 to serve", host.serves)
    result = host.data / RESULT_FILE  # written once the upgrader has seen N+1 healthy
    wait_until("the upgrader's answer", result.exists, timeout=120)
    assert json.loads(result.read_text())["ok"] is True

    # N+2 fails its health check on the host: rolled back there, halted at the hub
    failing = upgrade_to("0.1.2")
    halted = wait_until(
        "the hub to halt the upgrade",
        lambda: (u := admin.get_agent_upgrade(failing)).state == "halted" and u,
        timeout=600,
    )
    assert [f["agent_id"] for f in halted.failed] == [host.agent_id(admin)]
    assert "rolled back" in halted.failed[0]["reason"]
    assert host.metadata()["version"] == "0.1.1"
    assert host.serves()
