"""Issue 16, item 4: the playbook's pre-flight checks fail in seconds, before anything is
copied to the host, and name the fix; run over a local connection against this machine
(PID 1 here is not systemd, which is one of the things checked)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.harness.ansible import HAS_ANSIBLE, run_playbook

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not HAS_ANSIBLE, reason="ansible-core is not installed"),
]

FAILED = r"(?:fatal: \[{host}\]: FAILED!|failed: \[{host}\] \(item=\w+\)) => (.*)"
"""A failed task's result on ``host`` (a loop's item's too)."""
BASE_PYTHON = Path(sys.base_prefix) / "bin" / "python3.11"

REFUSED_HOSTS: dict[str, str] = {
    "no-systemd": "",  # appliance_manage_services defaults to true
    "no-worker-password": """
          appliance_manage_services: false
          appliance_connect: true
          appliance_admin_password: correct-horse-battery-staple""",
    "no-python": """
          appliance_manage_services: false
          appliance_python: /nonexistent/bin/python3.11""",
    "silent-probe": """
          appliance_manage_services: false
          appliance_python: /bin/true""",
    "small-disk": """
          appliance_manage_services: false
          appliance_preflight_free_gb: 1000000""",
    "old-cpu": """
          appliance_manage_services: false
          appliance_preflight_cpu_flags: [sse4_2, avx9000]""",
}
"""Hosts the pre-flight checks must refuse, each for its own reason (its host variables).
One run of site.yml checks them side by side, as a site's inventory of several hosts is
checked: an ansible-playbook run costs 6 s of CPU, most of it Ansible starting."""


def _inventory(site: Path, hub_hosts: dict[str, str], workers: tuple[str, ...] = ()) -> str:
    hosts = "".join(
        f"        {host}:\n          appliance_prefix: {site}/{host}{variables}\n"
        for host, variables in hub_hosts.items()
    )
    in_workers = "".join(f"        {host}:\n" for host in workers)
    return f"""
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: {sys.executable}
    ansible_become: false  # this test runs as the user it would become (no sudo here)
    appliance_release_key: {site}/release.pub
    appliance_python: {BASE_PYTHON}
  children:
    hub:
      hosts:
{hosts}""" + (f"    workers:\n      hosts:\n{in_workers}" if workers else "")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "inventory.yml").write_text(_inventory(tmp_path, {"hub1": ""}))
    return tmp_path


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Run site.yml once over REFUSED_HOSTS: each must fail before anything is installed
    on it; its failure's message, on one line, by host."""
    site = tmp_path_factory.mktemp("preflight")
    inventory = _inventory(site, REFUSED_HOSTS, workers=("no-worker-password",))
    (site / "inventory.yml").write_text(inventory)
    result = run_playbook(site, "site.yml", "--forks", str(len(REFUSED_HOSTS)), timeout=300)
    assert result.returncode != 0, result.stdout[-3000:]
    messages = {}
    for host in REFUSED_HOSTS:
        assert re.search(rf"{host}\s*:.*failed=1", result.stdout), result.stdout[-3000:]
        assert not (site / host / "opt").exists(), f"{host}: nothing is copied before the checks"
        failed = re.search(FAILED.format(host=re.escape(host)), result.stdout)
        assert failed, result.stdout[-3000:]
        messages[host] = " ".join(failed[1].split())
    return messages


def test_a_host_without_systemd_is_refused_when_services_are_to_be_started(
    refusals: dict[str, str],
) -> None:
    message = refusals["no-systemd"]

    assert "PID 1 on this host is not systemd" in message
    assert "appliance_manage_services=false" in message


def test_a_worker_without_its_password_is_refused_before_the_install(
    refusals: dict[str, str],
) -> None:
    """Found on the VM: an empty appliance_worker_password (the default) made the step
    that creates the worker's account wait for its password forever, 30 minutes in."""
    message = refusals["no-worker-password"]

    assert "set appliance_worker_password for no-worker-password" in message


def test_a_python_that_is_not_there_names_the_packages(refusals: dict[str, str]) -> None:
    message = refusals["no-python"]

    assert "/nonexistent/bin/python3.11 does not run here" in message
    assert "apt install python3.11 python3.11-venv" in message


def test_a_probe_that_prints_no_result_says_so_with_its_output(
    refusals: dict[str, str],
) -> None:
    """Seen once in the gate under load: the probe's output did not parse, and the only
    message was the JSON parser's. A 'Python' that exits 0 and prints nothing stands in."""
    message = refusals["silent-probe"]

    assert "probe ran with /bin/true (exit status 0) but printed no result" in message


def test_too_little_disk_says_how_much_is_free_and_needed(refusals: dict[str, str]) -> None:
    message = refusals["small-disk"]

    assert re.search(r"only [\d.]+ GB free at /\S*, 1000000 GB needed", message), message


def test_a_cpu_without_a_needed_instruction_set_is_named(refusals: dict[str, str]) -> None:
    message = refusals["old-cpu"]

    assert "lacking avx9000" in message and "x86-64 at level v2" in message


@pytest.mark.parametrize("playbook", ["upgrade.yml", "upgrade-agents.yml"])
def test_the_upgrade_playbooks_check_the_host_with_the_shared_settings(
    site: Path, playbook: str
) -> None:
    """Found on the VM: upgrade.yml ran the pre-flight role alone, before the shared
    settings (roles/common's defaults) were loaded, and stopped on 'appliance_python is
    undefined'. Here appliance_python is left to its default, as an operator's inventory
    leaves it; the checks run and stop on what they find (no systemd here)."""
    inventory = site / "inventory.yml"
    text = inventory.read_text().replace(f"    appliance_python: {BASE_PYTHON}\n", "")
    if playbook == "upgrade-agents.yml":
        text = text.replace("    hub:\n", "    agents:\n")
    inventory.write_text(text)

    result = run_playbook(site, playbook, timeout=300)

    assert result.returncode != 0
    assert "is undefined" not in result.stdout, result.stdout[-3000:]
    assert "PID 1 on this host is not systemd" in result.stdout, result.stdout[-3000:]
