"""Issue 14, findings 5 and 6 on a real agent: client-chosen request ids are bounded and
forgotten with their experiment; feedback outcomes must suit the experiment's metric; and
the data plane answers only clients with an inference key the hub issued.

(300 requests with 1 MiB ids took an agent from 666 MB to 970 MB, kept after the
experiment stopped; one ``1e308`` outcome blanked a variant's summary at the hub, and
``-1e6`` outcomes moved both means to about -750,000.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from agent.identity import credentials, load_identity
from appliance.client.hub import HubClient
from appliance.errors import HubRejectedError
from appliance.wire.fleet import AgentReport, NewInferenceKey
from tests.harness.site import (
    MODEL,
    agent_status,
    publish,
    serving_version,
    stage_candidate,
    wait_until,
)

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
    engineer: HubClient, approver: HubClient, start_test_agent: Any
) -> None:
    control = publish(engineer, approver).version
    candidate = stage_candidate(engineer, approver)
    agent = start_test_agent("data-plane")
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


def test_a_mean_experiment_takes_outcomes_within_its_bounds_from_clients_and_agents(
    admin: HubClient,
    engineer: HubClient,
    approver: HubClient,
    hub: Any,
    start_test_agent: Any,
    workdir: Path,
) -> None:
    """Finding 6, the ``mean`` half: outcomes are bounded by the experiment's own
    configuration (here a basket of 0 to 500 dirhams), at the agent for each outcome and
    at the hub for each summary, so neither a client nor an agent's key skews the means."""
    control = publish(engineer, approver).version
    candidate = stage_candidate(engineer, approver)
    agent = start_test_agent("basket")
    wait_until("control", lambda: serving_version(agent) == str(control))
    variants = [
        {"name": "control", "version": control, "weight": 0.5},
        {"name": "candidate", "version": candidate, "weight": 0.5},
    ]
    spec = {"name": "basket", "model": MODEL, "zone": "ae-dxb", "variants": variants}
    with pytest.raises(HubRejectedError) as nonsense:
        engineer.create_experiment({**spec, "metric": "mean", "outcome_min": 9, "outcome_max": 1})
    assert nonsense.value.status_code == 400 and "min < max" in str(nonsense.value)
    created = engineer.create_experiment(
        {**spec, "metric": "mean", "outcome_min": 0, "outcome_max": 500}
    )
    assert (created["outcome_min"], created["outcome_max"]) == (0, 500)
    wait_until("the experiment", lambda: "parameters" in _infer(agent.url).json())

    answer = _infer(agent.url).json()
    feedback = f"{agent.url}/v2/models/{MODEL}/feedback"
    for outcome in (-1e6, -1, 500.5):
        refused = httpx.post(feedback, json={"id": answer["id"], "outcome": outcome}, timeout=10)
        assert refused.status_code == 422 and "within 0 … 500" in refused.text, refused.text
    assert httpx.post(feedback, json={"id": answer["id"], "outcome": 250}, timeout=10).is_success

    # The agent's own key sends a summary of -1e6 outcomes: the hub refuses it.
    me = next(a for a in admin.list_agents() if a.name == "basket")
    identity = load_identity(workdir / "basket")
    assert identity is not None
    forged = AgentReport(
        key="forged-ab",
        kind="ab",
        body={
            "experiment": "basket",
            "variant": "control",
            "count": 4,
            "total": -4e6,
            "total_sq": 4e12,
        },
    )
    with HubClient(hub.url, credentials=credentials(workdir / "basket", identity)) as as_agent:
        (refusal,) = as_agent.send_reports(me.id, [forged]).refused
    assert refusal.key == "forged-ab" and "total" in refusal.reason
    wait_until(
        "the real outcome to reach the hub",
        lambda: sum(v["count"] for v in engineer.experiment("basket")["variants"]) == 1,
        60,
    )
    means = [v["mean"] for v in engineer.experiment("basket")["variants"] if v["count"]]
    assert means == [250.0]
    engineer.stop_experiment("basket")


def _triton_infer(url: str, key: str | None) -> None:
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    x = triton.InferInput("input", [1, 4], "FP32")
    x.set_data_from_numpy(np.ones((1, 4), np.float32), binary_data=False)  # JSON tensors
    out = triton.InferRequestedOutput("probabilities", binary_data=False)
    headers = {"Authorization": f"Bearer {key}"} if key else None
    answer = client.infer(MODEL, [x], outputs=[out], headers=headers)
    assert answer.as_numpy("probabilities").shape == (1, 2)


def _call(url: str, key: str | None, path: str = f"/v2/models/{MODEL}/infer") -> int:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    if path.endswith("/infer"):
        return httpx.post(url + path, json=BODY, headers=headers, timeout=10).status_code
    return httpx.get(url + path, headers=headers, timeout=10).status_code


def test_the_data_plane_needs_a_key_the_hub_issued_even_with_the_hub_away(
    hub: Any,
    admin: HubClient,
    engineer: HubClient,
    approver: HubClient,
    start_test_agent: Any,
) -> None:
    """Finding 6: inference, feedback, status and metrics were open to anyone."""
    publish(engineer, approver)
    agent = start_test_agent("keyed", open_data_plane=False)
    wait_until("a model", lambda: _call(agent.url, None, "/v2/health/ready") == 200)
    assert _call(agent.url, None) == 401
    assert _call(agent.url, "ak_0123456789ab_nothing") == 401
    for path in ("/agent/status", "/metrics", f"/v2/models/{MODEL}"):
        assert _call(agent.url, None, path) == 401
    anonymous_feedback = httpx.post(
        f"{agent.url}/v2/models/{MODEL}/feedback", json={"id": "x", "outcome": 1}, timeout=10
    )
    assert anonymous_feedback.status_code == 401

    key = admin.create_inference_key(
        NewInferenceKey(name="clinic-app", zone="ae-dxb", models=[MODEL], days=30)
    )
    other = admin.create_inference_key(
        NewInferenceKey(name="other-app", zone="ae-dxb", models=["other"], days=30)
    )
    assert key.key is not None and other.key is not None
    wait_until("the key to reach the agent", lambda: _call(agent.url, key.key) == 200)
    assert _call(agent.url, key.key[:-1] + "x") == 401  # a wrong secret
    assert _call(agent.url, other.key) == 403  # a key for another model
    for path in ("/agent/status", "/metrics"):
        assert _call(agent.url, key.key, path) == 200
    _triton_infer(agent.url, key.key)  # a stock Triton client, with the key as a header
    with pytest.raises(InferenceServerException, match="inference key"):
        _triton_infer(agent.url, None)
    listed = {k.key_id: k for k in admin.list_inference_keys()}
    assert listed[key.key_id].key is None  # the hub never shows a key again

    # The hub goes away and the agent restarts: the key still works (the signed index is
    # kept on the box); then the key is revoked and stops working.
    hub.stop()
    agent.stop()
    agent.start()
    agent.wait_healthy()
    wait_until("the model again", lambda: _call(agent.url, None, "/v2/health/ready") == 200)
    assert _call(agent.url, key.key) == 200
    hub.start()
    hub.wait_healthy()
    admin.revoke_inference_key(key.id)
    wait_until("the revocation to reach the agent", lambda: _call(agent.url, key.key) == 401)
