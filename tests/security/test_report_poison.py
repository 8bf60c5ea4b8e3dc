"""Issue 14, finding 4: anonymous NaN poison wedged an agent's reports for good.

``"data": ["nan", ...]`` (or ``1e39`` in FP32) was answered 200, its rows entered the
drift window, the hub refused the whole report batch with 400, and the agent sent the
same batch again for ever while the hub still showed it healthy. Now the poison is
refused at the door (400/422), and a report the hub will never take is set aside by the
agent, which goes on delivering the rest and says it is degraded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.identity import credentials, load_identity
from agent.outbox import Outbox
from appliance.client.hub import HubClient
from appliance.wire.fleet import AgentReport
from tests.harness.site import MODEL, agent_status, publish, serving_version, wait_until

pytestmark = pytest.mark.integration


def _infer(url: str, data: str) -> httpx.Response:
    body = '{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": ' + data
    return httpx.post(
        f"{url}/v2/models/{MODEL}/infer",
        content=(body + "}]}").encode(),
        headers={"content-type": "application/json"},
        timeout=10,
    )


def _drift(key: str, p_value: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "version": 1,
        "method": "ks",
        "drifted": False,
        "p_values": [p_value, 0.5, 0.5, 0.5],
        "distances": [0.1, 0.1, 0.1, 0.1],
        "threshold": 0.0125,
        "window_size": 100,
        "started_at": 1.7e9,
        "ended_at": 1.7e9 + 60,
    }


def test_poison_is_refused_at_the_door_and_a_refused_report_never_wedges_the_queue(
    admin: HubClient,
    engineer: HubClient,
    approver: HubClient,
    start_test_agent: Any,
    workdir: Path,
) -> None:
    publish(engineer, approver)
    agent = start_test_agent("poisoned")
    wait_until("the model", lambda: serving_version(agent) is not None)
    assert _infer(agent.url, '["nan", "nan", "nan", "nan"]').status_code == 400
    assert _infer(agent.url, "[1e39, 1, 2, 3]").status_code == 422
    assert _infer(agent.url, "[1, 2, 3, 4]").status_code == 200

    # A report the hub will never take (a NaN p-value arrives as null) at the head of the
    # queue, with good ones behind it: the agent was stopped, as after a crash.
    agent.stop()
    box = Outbox(workdir / "poisoned")
    box.put("drift", _drift("poison", None), key="poison-0")
    for i in range(3):
        box.put("drift", _drift(f"good-{i}", 0.4), key=f"good-{i}")
    box.close()
    agent.start()
    agent.wait_healthy()

    def delivered() -> dict[str, Any] | None:
        status = agent_status(agent.url)
        return status if status["outbox"]["depth"] == 0 else None

    status = wait_until("the good reports to reach the hub", delivered, 60)
    assert status["outbox"]["refused"] == 1
    (refused,) = status["outbox"]["refused_latest"]
    assert refused["key"] == "poison-0" and "p_values" in refused["reason"]
    assert sum(1 for r in admin.drift_reports(model=MODEL) if r["window_size"] == 100) == 3
    me = next(a for a in admin.list_agents() if a.name == "poisoned")
    wait_until(
        "the hub to see the agent degraded",
        lambda: next(a for a in admin.list_agents() if a.id == me.id).health == "degraded",
    )
    metrics = httpx.get(f"{agent.url}/metrics", timeout=10).text
    assert "appliance_agent_outbox_refused 1.0" in metrics


def test_the_hub_marks_an_agent_degraded_when_it_refuses_its_reports_whatever_the_agent_says(
    admin: HubClient, hub: Any, start_test_agent: Any, workdir: Path
) -> None:
    """Issue 14, finding 4: the hub showed a wedged agent healthy because it believed what
    the agent said. An agent (old software, or tampered with) that keeps saying ``ok``
    while the hub refuses its reports is shown ``degraded`` by the hub itself."""
    agent = start_test_agent("says-ok")
    me = next(a for a in admin.list_agents() if a.name == "says-ok")
    wait_until("a first heartbeat", lambda: admin.get_agent(me.id).health == "ok")
    identity = load_identity(workdir / "says-ok")
    assert identity is not None
    with HubClient(hub.url, credentials=credentials(workdir / "says-ok", identity)) as as_agent:
        answer = as_agent.send_reports(
            me.id, [AgentReport(key="forged-nan", kind="drift", body=_drift("x", None))]
        )
    assert [r.key for r in answer.refused] == ["forged-nan"]
    shown = admin.get_agent(me.id)
    assert shown.health == "degraded", shown
    assert "refused 1 of its reports" in (shown.detail or "")
    assert "p_values" in (shown.detail or "")
    # The real agent goes on saying it is fine; the hub goes on showing what it saw.
    before = shown.last_seen_at
    wait_until("another heartbeat", lambda: admin.get_agent(me.id).last_seen_at != before)
    shown = admin.get_agent(me.id)
    assert shown.health == "degraded" and "agent says ok" in (shown.detail or "")
    assert agent_status(agent.url)["outbox"]["refused"] == 0  # nothing on the box says so
