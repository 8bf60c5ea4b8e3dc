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

from agent.outbox import Outbox
from appliance.client.hub import HubClient
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
    start_agent: Any,
    workdir: Path,
) -> None:
    publish(engineer, approver)
    agent = start_agent("poisoned")
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
