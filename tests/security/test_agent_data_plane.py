"""Issue 14, findings 5 and 6 on a real agent: client-chosen request ids are bounded and
forgotten with their experiment; feedback outcomes must suit the experiment's metric.

(300 requests with 1 MiB ids took an agent from 666 MB to 970 MB, kept after the
experiment stopped; one ``1e308`` outcome blanked a variant's summary at the hub, and
``-1e6`` outcomes moved both means to about -750,000.)
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from appliance.client.hub import HubClient
from tests.harness.models import make_reference_npy, make_tiny_onnx
from tests.harness.site import MODEL, agent_status, publish, serving_version, wait_until

pytestmark = pytest.mark.integration

BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}


def _infer(url: str, **extra: Any) -> httpx.Response:
    return httpx.post(
        f"{url}/v2/models/{MODEL}/infer",
        json={**BODY, **extra},
        headers={"x-subject-id": "customer-1"},
        timeout=10,
    )


def test_request_ids_are_bounded_and_outcomes_checked(
    engineer: HubClient, approver: HubClient, start_agent: Any
) -> None:
    control = publish(engineer, approver).version
    candidate = engineer.upload_model(
        MODEL, make_tiny_onnx(), reference_npy=make_reference_npy()
    ).version
    engineer.change_stage(MODEL, candidate, "staging")
    approver.approve_exposure(MODEL, candidate)
    agent = start_agent("data-plane")
    wait_until("control", lambda: serving_version(agent) == str(control))
    engineer.create_experiment(
        {
            "name": "bounded",
            "model": MODEL,
            "zone": "ae-dxb",
            "variants": [
                {"name": "control", "version": control, "weight": 0.5},
                {"name": "candidate", "version": candidate, "weight": 0.5},
            ],
        }
    )
    wait_until("the experiment", lambda: "parameters" in _infer(agent.url).json())

    huge = _infer(agent.url, id="x" * (1 << 20))
    assert huge.status_code == 400 and "at most 128" in huge.text
    for i in range(300):
        assert _infer(agent.url, id=f"{i:03d}" + "y" * 125).status_code == 200
    held = agent_status(agent.url)["experiments"]
    assert held["remembered_ids"] >= 300 and held["remembered_bytes"] < 1 << 20

    answer = _infer(agent.url).json()  # no id given: the agent issues one
    assert len(answer["id"]) <= 128
    feedback = f"{agent.url}/v2/models/{MODEL}/feedback"
    for outcome in (1e308, -1e6, 0.5):
        refused = httpx.post(feedback, json={"id": answer["id"], "outcome": outcome}, timeout=10)
        assert refused.status_code == 422, refused.text
    assert httpx.post(feedback, json={"id": answer["id"], "outcome": 1}, timeout=10).is_success

    engineer.stop_experiment("bounded")
    wait_until(
        "the ids to be forgotten",
        lambda: agent_status(agent.url)["experiments"]["remembered_ids"] == 0,
    )
