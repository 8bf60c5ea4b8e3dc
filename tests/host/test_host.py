"""Issue 16, item 4: install on a real host with systemd as PID 1, as an operator would,
following ansible/README.md: a Debian 12 virtual machine (:mod:`tests.host.vm`) over SSH,
the hub and a worker on it and an agent under a prefix of its own, services managed.
``make test-host`` runs it (slow: QEMU emulates the CPU where KVM does not work here);
``make test`` skips it."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.ansible import HAS_ANSIBLE, run_playbook
from tests.harness.releases import build_archives, cached_os_packages
from tests.host import vm

pytestmark = [
    pytest.mark.host,
    pytest.mark.skipif(
        os.environ.get("APPLIANCE_TEST_HOST") != "1", reason="a virtual machine: make test-host"
    ),
    pytest.mark.skipif(not HAS_ANSIBLE, reason="ansible-core is not installed"),
]

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
                            "appliance_admin_password": "correct-horse-battery-staple",
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
