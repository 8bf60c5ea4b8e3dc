"""Issue 16, item 4: install on a real host with systemd as PID 1, as an operator would,
following ansible/README.md: a Debian 12 virtual machine (:mod:`tests.host.vm`) over SSH,
the hub and a worker on it and an agent under a prefix of its own, services managed.
``make test-host`` runs it (slow: QEMU emulates the CPU where KVM does not work here);
``make test`` skips it.

In order, on one host: the first install ends green and a second run changes nothing; a
model goes to production through the approval policy and the agent serves it to a client
with an inference key; ``upgrade.yml`` upgrades the hub host to N+1 offline; an upgrade to
N+2, whose hub fails its health check, rolls back to N+1 by itself with the model still
in production and served; ``upgrade-agents.yml`` does the same for the agent (N+1, then
N+2 whose ``/v2`` fails, rolled back); last, the hub itself upgrades its agent to N+3: an
admin uploads the release and starts an agent upgrade, the agent fetches the archive,
systemd's ``appliance-agent-upgrade.path`` starts the host's upgrader as root, and the
agent comes back on N+3, serving, and the hub's upgrade completes."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from appliance.cli.connect import verify_for
from appliance.cli.demo.processes import wait_for
from appliance.client.hub import HubClient
from appliance.security.credentials import UserCredentials
from appliance.security.tls import client_ssl_context
from appliance.wire.fleet import AgentUpgradeInfo, NewAgentUpgrade, NewInferenceKey
from tests.harness.ansible import HAS_ANSIBLE, run_playbook
from tests.harness.releases import build_archives, build_release, cached_os_packages, edited
from tests.harness.site import MODEL, publish
from tests.host import vm

pytestmark = [
    pytest.mark.host,
    pytest.mark.skipif(
        os.environ.get("APPLIANCE_TEST_HOST") != "1", reason="a virtual machine: make test-host"
    ),
    pytest.mark.skipif(not HAS_ANSIBLE, reason="ansible-core is not installed"),
]

PASSWORDS = {
    "admin": "correct-horse-battery-staple",
    "alice": "alice-engineer-password",
    "omar": "omar-approver-password",
}
HUB_DATA = "/var/lib/appliance/hub"
AGENT_N3 = "appliance-agent-0.1.3.tar"
BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
BROKEN_HEALTH = (
    "hub/app.py",
    '    return {"status": "ok", "version": __version__}',
    '    raise RuntimeError("this release is broken on purpose")',
)
BROKEN_METADATA = (
    "agent/app.py",
    "    async def server_metadata() -> dict[str, object]:\n",
    "    async def server_metadata() -> dict[str, object]:\n"
    '        raise RuntimeError("this release is broken on purpose")\n',
)
"""Release N+2: its hub and agent start, but the hub's /health and the agent's /v2 answer
500 (their upgrades must roll back)."""

RECAP = re.compile(
    r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M
)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[vm.VirtualHost]:
    machine = vm.VirtualHost(vm.build(), tmp_path_factory.mktemp("vm") / "disk.img")
    machine.start()
    try:
        print(f"booted to SSH in {machine.wait_ready():.0f} s")
        yield machine
    finally:
        machine.stop()


@pytest.fixture(scope="module")
def site(host: vm.VirtualHost, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    debs = cached_os_packages()
    assert debs is not None, "a minimal host needs python3.11-venv from the archive"
    public_key = build_archives(root / "dist", "hub", "agent", os_packages=debs)
    private_key = public_key.with_name("release.key")
    n1 = edited(root / "n1", "0.1.1")
    n2 = edited(root / "n2", "0.1.2", replace=(BROKEN_HEALTH, BROKEN_METADATA))
    for tree in (n1, n2):
        for kind in ("hub", "agent"):
            build_release(tree, root / "dist", private_key, kind=kind)
    n3 = build_release(edited(root / "n3", "0.1.3"), root / "dist", private_key, kind="agent")
    n3.rename(root / AGENT_N3)  # out of the playbooks' archive folder: the hub sends it
    connection = {
        "ansible_host": "127.0.0.1",
        "ansible_port": host.ssh_port,
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(host.image.key),
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        "ansible_python_interpreter": "/usr/bin/python3",
    }
    inventory = {
        "all": {
            "vars": {
                "appliance_archive_dir": str(root / "dist"),
                "appliance_release_key": str(public_key),
            },
            "children": {
                "hub": {
                    "hosts": {
                        vm.HOSTNAME: {
                            **connection,
                            "appliance_admin_password": PASSWORDS["admin"],
                            # an agent's venv built under emulation takes its time
                            "appliance_hub_extra_env": {"APPLIANCE_AGENT_INSTALL_GRACE_S": "3000"},
                            "appliance_bootstrap_users": [
                                {"name": n, "roles": [r], "password": PASSWORDS[n]}
                                for n, r in (("alice", "ml-engineer"), ("omar", "approver"))
                            ],
                        }
                    }
                },
                "workers": {
                    "hosts": {vm.HOSTNAME: {"appliance_worker_password": "worker-password-long"}}
                },
                "agents": {"hosts": {"edge": {**connection, "appliance_prefix": "/srv/edge"}}},
            },
        }
    }
    (root / "inventory.yml").write_text(json.dumps(inventory, indent=2))  # JSON is YAML
    return root


def test_a_first_install_ends_green_and_a_second_changes_nothing(
    host: vm.VirtualHost, site: Path
) -> None:
    first = run_playbook(site, "site.yml", timeout=5400, offline=False)
    assert first.returncode == 0, first.stdout[-8000:] + first.stderr[-2000:]
    assert {m[0] for m in RECAP.findall(first.stdout)} == {vm.HOSTNAME, "edge"}, first.stdout

    active = host.ssh("systemctl is-active appliance-hub appliance-worker appliance-agent")
    assert active.split() == ["active"] * 3
    assert host.ssh("id -u appliance-agent").strip().isdigit(), "the agent's user was made"
    venv = host.ssh("dpkg-query -W -f '${Status}' python3.11-venv", check=False)
    assert "installed" in venv, "python3.11-venv came from the archive"

    second = run_playbook(site, "site.yml", timeout=3600, offline=False)
    assert second.returncode == 0, second.stdout[-8000:]
    recap = {m[0]: int(m[2]) for m in RECAP.findall(second.stdout)}
    assert recap == {vm.HOSTNAME: 0, "edge": 0}, recap


def _ca(host: vm.VirtualHost, site: Path) -> Path:
    """The site CA, as an operator copies it to the workstation."""
    ca = site / "ca.crt"
    if not ca.exists():
        ca.write_text(host.ssh(f"cat {HUB_DATA}/ca/ca.crt"))
    return ca


@contextmanager
def _signed_in(host: vm.VirtualHost, site: Path, username: str) -> Iterator[HubClient]:
    """A client of the hub on the host (its certificate names 127.0.0.1: the forward)."""
    url = f"https://127.0.0.1:{host.ports[8700]}"
    verify = verify_for(_ca(host, site))
    with HubClient(url, verify=verify) as anonymous:
        tokens = anonymous.sign_in(username, PASSWORDS[username])
    credentials = UserCredentials(tokens["access_token"], tokens["refresh_token"], url)
    with HubClient(url, credentials=credentials, verify=verify) as client:
        yield client


def _hub_version(host: vm.VirtualHost, site: Path) -> str:
    with _signed_in(host, site, "admin") as admin:
        return str(admin.health()["version"])


def _agent_version(host: vm.VirtualHost, site: Path) -> str:
    with httpx.Client(verify=client_ssl_context(_ca(host, site)), timeout=30) as client:
        answer = client.get(
            f"https://127.0.0.1:{host.ports[8701]}/v2", extensions={"sni_hostname": vm.HOSTNAME}
        )
    return str(answer.json()["version"])


def _infer(host: vm.VirtualHost, site: Path) -> httpx.Response:
    """A client application's request to the agent, by the name in its certificate (the
    host's name) through the forwarded port, with the inference key the admin issued."""
    key = (site / "inference.key").read_text()
    with httpx.Client(verify=client_ssl_context(_ca(host, site)), timeout=30) as client:
        return client.post(
            f"https://127.0.0.1:{host.ports[8701]}/v2/models/{MODEL}/infer",
            json=BODY,
            headers={"authorization": f"Bearer {key}"},
            extensions={"sni_hostname": vm.HOSTNAME},
        )


def _production(host: vm.VirtualHost, site: Path) -> list[int]:
    with _signed_in(host, site, "admin") as admin:
        return [v.version for v in admin.get_model(MODEL).versions if v.stage == "production"]


def test_a_model_in_production_is_served_by_the_agent(host: vm.VirtualHost, site: Path) -> None:
    with (
        _signed_in(host, site, "alice") as engineer,
        _signed_in(host, site, "omar") as approver,
        _signed_in(host, site, "admin") as admin,
    ):
        assert publish(engineer, approver).stage == "production"
        issued = admin.create_inference_key(
            NewInferenceKey(name="host-app", zone="ae-dxb", models=[MODEL], days=1)
        )
    assert issued.key
    (site / "inference.key").write_text(issued.key)

    def served() -> httpx.Response | None:
        try:
            answer = _infer(host, site)
        except httpx.HTTPError:
            return None
        return answer if answer.status_code == 200 else None

    answer = wait_for("the agent to serve the model", served, timeout=900)
    (output,) = answer.json()["outputs"]
    assert output["shape"] == [1, 2]


def _upgrade(
    site: Path, version: str, playbook: str = "upgrade.yml"
) -> subprocess.CompletedProcess[str]:
    return run_playbook(
        site, playbook, "-e", f"appliance_version={version}", timeout=3600, offline=False
    )


def test_the_hub_upgrades_offline_and_a_failing_release_rolls_back(
    host: vm.VirtualHost, site: Path
) -> None:
    before = _production(host, site)
    assert before

    upgraded = _upgrade(site, "0.1.1")
    assert upgraded.returncode == 0, upgraded.stdout[-8000:] + upgraded.stderr[-2000:]
    assert _hub_version(host, site) == "0.1.1"
    assert _production(host, site) == before
    assert _infer(host, site).status_code == 200

    failed = _upgrade(site, "0.1.2")
    assert failed.returncode != 0, failed.stdout[-8000:]
    assert "rolled back" in failed.stdout, failed.stdout[-8000:]
    assert _hub_version(host, site) == "0.1.1"
    assert _production(host, site) == before
    assert _infer(host, site).status_code == 200
    active = host.ssh("systemctl is-active appliance-hub appliance-worker appliance-agent")
    assert active.split() == ["active"] * 3


def test_the_agents_upgrade_ring_by_ring_and_a_failing_release_rolls_back(
    host: vm.VirtualHost, site: Path
) -> None:
    assert _agent_version(host, site) == "0.1.0"

    upgraded = _upgrade(site, "0.1.1", "upgrade-agents.yml")
    assert upgraded.returncode == 0, upgraded.stdout[-8000:] + upgraded.stderr[-2000:]
    assert _agent_version(host, site) == "0.1.1"
    assert _infer(host, site).status_code == 200

    failed = _upgrade(site, "0.1.2", "upgrade-agents.yml")
    assert failed.returncode != 0, failed.stdout[-8000:]
    assert "rolled back" in failed.stdout, failed.stdout[-8000:]
    assert _agent_version(host, site) == "0.1.1"
    assert _infer(host, site).status_code == 200
    assert host.ssh("systemctl is-active appliance-agent").strip() == "active"


def test_the_hub_upgrades_its_agent_through_the_hosts_path_unit(
    host: vm.VirtualHost, site: Path
) -> None:
    assert _agent_version(host, site) == "0.1.1"
    with _signed_in(host, site, "admin") as admin, (site / AGENT_N3).open("rb") as archive:
        assert admin.upload_agent_release(archive).version == "0.1.3"
        started = admin.start_agent_upgrade(
            NewAgentUpgrade(version="0.1.3", zone="ae-dxb", rings=[1.0], soak_s=0)
        )

    # the agent fetches the archive, its host's upgrader (root) installs it and restarts
    # the agent, which heartbeats the new release; then the ring (all of one) is done
    with _signed_in(host, site, "admin") as watcher:  # a session of its own: it is long

        def finished() -> AgentUpgradeInfo | None:
            upgrade = watcher.get_agent_upgrade(started.id)
            return upgrade if upgrade.state != "running" else None

        # every 10 s: the emulated host's CPU is the upgrader's too
        done = wait_for("the hub's agent upgrade to finish", finished, timeout=3000, every=10)
    assert done.state == "completed", (done.failed, done.steps)
    assert _agent_version(host, site) == "0.1.3"
    assert _infer(host, site).status_code == 200
    ran = host.ssh("journalctl -u appliance-agent-upgrade.service --no-pager")
    assert "0.1.3" in ran, ran[-4000:]
    assert host.ssh("systemctl is-active appliance-agent").strip() == "active"
    left = host.ssh("ls /srv/edge/var/lib/appliance/agent")
    assert "upgrade-request.json" not in left, left
