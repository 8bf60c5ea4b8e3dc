"""``appliance agent serve --workers N`` on real processes (issue 15): N processes answer on
one port; the serving ones follow what the owner installs, come back when they die, and
leave when the owner is gone."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from agent.identity import load_identity
from appliance.cli.demo.load import v2_body
from appliance.cli.demo.processes import ServiceProcess
from tests.harness.site import MODEL, publish, stage_candidate, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

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
    engineer, approver, start_test_agent
):
    first = publish(engineer, approver).version
    agent = start_test_agent("workers-a", env=TWO)
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
    engineer, approver, start_test_agent
):
    version = publish(engineer, approver).version
    agent = start_test_agent("workers-b", env=TWO)
    pids = wait_until("both processes serve", _both_serve(agent, version))

    os.kill(pids["serving"], signal.SIGKILL)
    again = wait_until(
        "a new serving process",
        lambda: (p := _both_serve(agent, version)()) and p["serving"] != pids["serving"] and p,
    )
    assert again["owner"] == pids["owner"]

    os.kill(again["owner"], signal.SIGKILL)  # as a crash would: no time to stop the others
    wait_until("the serving process leaves too", lambda: _gone(again["serving"]))


def _own_counts(data_dir: Path) -> dict[str, float]:
    """Requests each process counted itself, by role (what it shares, agent.peers)."""
    counts: dict[str, float] = {}
    for path in (data_dir / "processes").glob("*.json"):
        share = json.loads(path.read_text())
        counts[share["role"]] = sum(
            value for key, value in share["samples"] if key[0] == "appliance_agent_requests_total"
        )
    return counts


def _total_requests(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text  # a fresh connection: either process
    found = re.findall(rf'^appliance_agent_requests_total{{model="{MODEL}",.*}} (\S+)$', text, re.M)
    return sum(float(x) for x in found)


def _inference_count(url: str) -> int:
    stats = httpx.get(f"{url}/v2/models/{MODEL}/stats", timeout=5).json()  # either process
    return int(stats["model_stats"][0]["inference_count"])


def test_every_process_counts_toward_the_agents_metrics_statistics_and_reports(
    engineer, approver, admin, start_test_agent, workdir
):
    version = publish(engineer, approver).version
    agent = start_test_agent("workers-c", env={**TWO, "APPLIANCE_SERVING_REPORT_S": "0.5"})
    wait_until("both processes serve", _both_serve(agent, version))
    rows = np.random.default_rng(1).normal(size=(2, 4))
    sent = 0

    def both_answered() -> bool:
        nonlocal sent
        for _ in range(10):
            with httpx.Client(timeout=5) as client:
                answer = client.post(f"{agent.url}/v2/models/{MODEL}/infer", json=v2_body(rows))
            assert answer.status_code == 200, answer.text
            sent += 1
        counts = _own_counts(workdir / "workers-c")
        return counts.get("owner", 0) > 0 and counts.get("serving", 0) > 0

    wait_until("requests answered by both processes", both_answered)
    # Each process adds the others' counts as they last shared them (agent.peers: at most
    # a second behind), so the totals reach ``sent`` soon, not at once.
    wait_until(
        "every process's requests in /metrics and the statistics, whichever answers",
        lambda: all(
            _total_requests(agent.url) == sent and _inference_count(agent.url) == sent
            for _ in range(10)
        ),
    )
    serving = next(s for s in _statuses(agent) if s["process"]["role"] == "serving")
    assert serving["hub_reachable"] is True and serving["zone"] == "ae-dxb"

    agent_id = load_identity(workdir / "workers-c").agent_id
    wait_until(
        "the hub hears of every request",
        lambda: (
            sum(r["summary"]["requests"] for r in admin.serving_reports(agent_id=agent_id)) == sent
        ),
    )


def _statuses(agent: ServiceProcess) -> list[dict[str, Any]]:
    found = []
    for _ in range(20):
        with httpx.Client(timeout=5) as client:
            found.append(client.get(f"{agent.url}/agent/status").json())
    return found


def test_feedback_counts_once_whichever_process_answered_or_hears_it(
    engineer, approver, start_test_agent
):
    control = publish(engineer, approver).version
    candidate = stage_candidate(engineer, approver)
    agent = start_test_agent("workers-d", env={**TWO, "APPLIANCE_DRIFT_CHECK_S": "0.5"})
    wait_until("both processes serve", _both_serve(agent, control))
    engineer.create_experiment(
        {
            "name": "workers-ab",
            "model": MODEL,
            "zone": "ae-dxb",
            "variants": [
                {"name": "control", "version": control, "weight": 0.5},
                {"name": "candidate", "version": candidate, "weight": 0.5},
            ],
            "min_samples": 1000,
        }
    )
    rows = np.ones((1, 4))

    def infer(subject: str) -> dict[str, Any]:
        with httpx.Client(timeout=5) as client:  # a fresh connection: either process
            answer = client.post(
                f"{agent.url}/v2/models/{MODEL}/infer",
                json=v2_body(rows),
                headers={"x-subject-id": subject},
            )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def routed_everywhere() -> bool:  # both processes loaded the candidate and route to it
        return all("parameters" in infer(f"probe-{i}") for i in range(20))

    wait_until("the experiment in both processes", routed_everywhere)
    told = []
    for i in range(60):
        answer = infer(f"user-{i}")
        with httpx.Client(timeout=5) as client:  # another fresh connection
            feedback = client.post(
                f"{agent.url}/v2/models/{MODEL}/feedback",
                json={"id": answer["id"], "outcome": 1.0},
            )
        assert feedback.status_code == 200, feedback.text
        told.append(answer["id"])
    for _ in range(4):  # once, whichever process hears it again
        with httpx.Client(timeout=5) as client:
            again = client.post(
                f"{agent.url}/v2/models/{MODEL}/feedback", json={"id": told[0], "outcome": 1.0}
            )
        assert again.status_code == 404
    wait_until(
        "every outcome at the hub",
        lambda: sum(v["count"] for v in engineer.experiment("workers-ab")["variants"]) == 60,
    )
    engineer.stop_experiment("workers-ab")


def test_the_owners_drift_window_holds_the_rows_every_process_answered(
    engineer, approver, start_test_agent
):
    version = publish(engineer, approver).version
    agent = start_test_agent("workers-e", env={**TWO, "APPLIANCE_DRIFT_CHECK_S": "0.5"})
    wait_until("both processes serve", _both_serve(agent, version))
    key = f"{MODEL}/{version}"
    wait_until("the drift watch", lambda: key in _statuses(agent)[0]["drift"])
    rows = np.random.default_rng(2).normal(size=(10, 4))
    for _ in range(12):
        with httpx.Client(timeout=5) as client:  # a fresh connection: either process
            answer = client.post(f"{agent.url}/v2/models/{MODEL}/infer", json=v2_body(rows))
        assert answer.status_code == 200, answer.text
    wait_until(
        "all 120 rows in the owner's window",
        lambda: {s["drift"][key]["rows"] for s in _statuses(agent)} == {120},
    )
