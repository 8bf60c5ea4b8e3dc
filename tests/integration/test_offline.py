"""After a restart an agent serves its last good bundle, even with the hub down."""

from __future__ import annotations

import httpx
import pytest

from tests.harness.site import MODEL, publish, serving_version, wait_until

pytestmark = pytest.mark.integration


def test_restarted_agent_serves_last_good_model_with_hub_down(hub, engineer, approver, start_agent):
    agent = start_agent("offline-1")
    publish(engineer, approver)
    wait_until("v1", lambda: serving_version(agent) == "1")
    hub.stop()
    agent.kill()  # as a power cut would
    agent.start()
    agent.wait_healthy()
    wait_until(
        "ready", lambda: httpx.get(f"{agent.url}/v2/health/ready", timeout=2).status_code == 200
    )
    assert serving_version(agent) == "1"
    response = httpx.post(
        f"{agent.url}/v2/models/{MODEL}/infer",
        timeout=5,
        json={
            "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]
        },
    )
    assert response.status_code == 200 and response.json()["model_version"] == "1"
    status = httpx.get(f"{agent.url}/agent/status", timeout=5).json()
    wait_until(
        "the agent to notice the hub is down",
        lambda: httpx.get(f"{agent.url}/agent/status", timeout=5).json()["last_error"],
    )
    assert status["models"][0]["version"] == 1
