"""``appliance agent serve --workers N`` on real processes (issue 15): N processes answer on
one port; the serving ones follow what the owner installs, come back when they die, and
leave when the owner is gone."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from appliance.cli.demo.load import v2_body
from appliance.cli.demo.processes import ServiceProcess
from tests.harness.site import MODEL, publish, wait_until

pytestmark = pytest.mark.integration

TWO = {"APPLIANCE_SERVING_PROCESSES": "2"}


def _seen(agent: ServiceProcess, rounds: int = 20) -> dict[str, dict[int, list[int]]]:
    """Role → pid → versions of the model it serves, over fresh connections (each may land
    on either process)."""
    found: dict[str, dict[int, list[int]]] = {}
    for _ in range(rounds):
        with httpx.Client(timeout=5) as client:  # a new connection each time
            status = client.get(f"{agent.url}/agent/status").json()
        versions = [m["version"] for m in status["models"] if m["name"] == MODEL]
        found.setdefault(status["process"]["role"], {})[status["process"]["pid"]] = versions
    return found


def _both_serve(agent: ServiceProcess, version: int) -> Callable[[], dict[str, int] | None]:
    def check() -> dict[str, int] | None:
        seen = _seen(agent)
        pids = {}
        for role in ("owner", "serving"):
            now = [pid for pid, versions in seen.get(role, {}).items() if versions == [version]]
            if not now:
                return None
            pids[role] = now[0]
        return pids

    return check


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"  # exited, not reaped by whoever adopted it


def test_two_processes_share_the_port_and_serve_what_the_owner_installs(
    engineer, approver, start_agent
):
    first = publish(engineer, approver).version
    agent = start_agent("workers-a", env=TWO)
    pids = wait_until("both processes serve v1", _both_serve(agent, first))
    assert pids["owner"] != pids["serving"]

    second = publish(engineer, approver).version
    wait_until("both processes serve v2", _both_serve(agent, second))
    rows = np.random.default_rng(0).normal(size=(4, 4))
    for _ in range(10):
        with httpx.Client(timeout=5) as client:
            answer = client.post(f"{agent.url}/v2/models/{MODEL}/infer", json=v2_body(rows))
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == str(second)


def test_a_serving_process_that_dies_comes_back_and_all_leave_with_the_owner(
    engineer, approver, start_agent
):
    version = publish(engineer, approver).version
    agent = start_agent("workers-b", env=TWO)
    pids = wait_until("both processes serve", _both_serve(agent, version))

    os.kill(pids["serving"], signal.SIGKILL)
    again = wait_until(
        "a new serving process",
        lambda: (p := _both_serve(agent, version)()) and p["serving"] != pids["serving"] and p,
    )
    assert again["owner"] == pids["owner"]

    os.kill(again["owner"], signal.SIGKILL)  # as a crash would: no time to stop the others
    wait_until("the serving process leaves too", lambda: _gone(again["serving"]))
