"""A/B experiments on a real hub: outcomes arrive as agents' reports, the verdict follows."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from agent.identity import credentials, load_identity
from appliance.cli.demo.processes import default_trust
from appliance.client.hub import HubClient
from appliance.errors import HubRejectedError
from appliance.wire.fleet import AgentReport
from tests.harness.models import make_reference_npy, make_tiny_onnx
from tests.harness.site import publish, serving_version, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _agent_client(hub_url: str, data_dir) -> tuple[HubClient, int]:
    identity = load_identity(data_dir)
    assert identity is not None
    return HubClient(hub_url, credentials=credentials(data_dir, identity)), identity.agent_id


def _report(client, agent_id, experiment, rates, n, seed):
    rng = np.random.default_rng(seed)
    reports = [
        AgentReport(
            key=f"{experiment}-{variant}-{seed}",
            kind="ab",
            body={
                "experiment": experiment,
                "variant": variant,
                "count": n,
                "total": float(rng.binomial(n, rate)),
            },
        )
        for variant, rate in rates.items()
    ]
    assert len(client.send_reports(agent_id, reports).accepted) == len(reports)


def test_an_experiment_reaches_a_verdict_from_agent_reports(
    hub, engineer, approver, start_test_agent, workdir
):
    first = publish(engineer, approver).version
    second = publish(engineer, approver).version
    engineer.change_stage("tiny", first, "staging")  # archived by the second's promotion
    approver.approve_exposure("tiny", first)
    agent = start_test_agent("ab-1")
    spec = {
        "name": "lift",
        "model": "tiny",
        "zone": "ae-dxb",
        "variants": [
            {"name": "control", "version": first, "weight": 0.5},
            {"name": "challenger", "version": second, "weight": 0.5},
        ],
        "min_samples": 5000,
    }
    created = engineer.create_experiment(spec)
    assert created["verdict"] == "collecting" and len(created["salt"]) == 32
    client, agent_id = _agent_client(hub.url, workdir / "ab-1")
    _report(client, agent_id, "lift", {"control": 0.10, "challenger": 0.12}, 3000, seed=1)
    assert engineer.experiment("lift")["verdict"] == "collecting"
    _report(client, agent_id, "lift", {"control": 0.10, "challenger": 0.12}, 7000, seed=2)
    _report(client, agent_id, "lift", {"control": 0.10, "challenger": 0.12}, 7000, seed=2)  # resent
    result = engineer.experiment("lift")
    assert [v["count"] for v in result["variants"]] == [10_000, 10_000]
    assert result["verdict"] == "winner" and result["winner"] == "challenger"
    (comparison,) = result["comparisons"]
    assert comparison["ci_low"] > 0 and comparison["p_value"] < 0.05
    with pytest.raises(HubRejectedError) as second:
        engineer.create_experiment({**spec, "name": "lift-again"})
    assert second.value.status_code == 409  # one experiment per model and group
    assert engineer.stop_experiment("lift")["status"] == "stopped"
    assert agent.url  # the agent is enrolled and its key signs the reports


def test_experiments_need_the_right_role_and_known_versions(engineer, approver):
    spec = {
        "name": "bad",
        "model": "tiny",
        "zone": "ae-dxb",
        "variants": [
            {"name": "a", "version": 1, "weight": 1},
            {"name": "b", "version": 99, "weight": 1},
        ],
    }
    with pytest.raises(HubRejectedError) as missing:
        engineer.create_experiment(spec)
    assert missing.value.status_code == 404
    with pytest.raises(HubRejectedError) as refused:
        approver.create_experiment({**spec, "name": "other"})
    assert refused.value.status_code == 403


def _infer(url: str, subject: str | None, version: int | None = None) -> dict:
    path = f"/v2/models/tiny/versions/{version}/infer" if version else "/v2/models/tiny/infer"
    headers = {"x-subject-id": subject} if subject else {}
    body = {
        "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]
    }
    response = httpx.post(url + path, json=body, headers=headers, timeout=5, verify=default_trust())
    assert response.status_code == 200, response.text
    answer: dict = response.json()
    return answer


def test_agents_serve_sticky_variants_and_feedback_reaches_a_verdict(
    hub, engineer, approver, start_test_agent
):
    from tests.harness.models import make_reference_npy, make_tiny_onnx

    control = publish(engineer, approver).version
    candidate = engineer.upload_model(
        "tiny", make_tiny_onnx(n_classes=2), reference_npy=make_reference_npy()
    ).version
    engineer.change_stage("tiny", candidate, "staging")
    approver.approve_exposure("tiny", candidate)
    fast = {"APPLIANCE_DRIFT_CHECK_S": "0.5"}
    agents = [start_test_agent("ab-a", env=fast), start_test_agent("ab-b", env=fast)]
    for agent in agents:
        wait_until("control", lambda a=agent: serving_version(a) == str(control))
    engineer.create_experiment(
        {
            "name": "sticky",
            "model": "tiny",
            "zone": "ae-dxb",
            "variants": [
                {"name": "control", "version": control, "weight": 0.5},
                {"name": "candidate", "version": candidate, "weight": 0.5},
            ],
            "min_samples": 150,
        }
    )
    for agent in agents:
        wait_until("the experiment", lambda a=agent: "parameters" in _infer(a.url, "probe"))
    seen = {}
    for i in range(40):
        a, b = (_infer(agent.url, f"subject-{i}") for agent in agents)
        assert a["parameters"]["variant"] == b["parameters"]["variant"]
        assert a["model_version"] == b["model_version"]
        assert a["parameters"]["sticky"] is True
        seen[a["parameters"]["variant"]] = int(a["model_version"])
    assert seen == {"control": control, "candidate": candidate}
    assert _infer(agents[0].url, None)["parameters"]["sticky"] is False
    pinned = _infer(agents[0].url, "subject-1", version=control)  # a named version: no routing
    assert "parameters" not in pinned and pinned["model_version"] == str(control)
    rng = np.random.default_rng(0)
    for i in range(400):
        answer = _infer(agents[i % 2].url, f"user-{i}")
        rate = 0.7 if answer["parameters"]["variant"] == "candidate" else 0.3
        feedback = httpx.post(
            f"{agents[i % 2].url}/v2/models/tiny/feedback",
            json={"id": answer["id"], "outcome": float(rng.random() < rate)},
            timeout=5,
            verify=default_trust(),
        )
        assert feedback.status_code == 200

    def all_outcomes_counted() -> dict | None:
        result = engineer.experiment("sticky")
        return result if sum(v["count"] for v in result["variants"]) == 400 else None

    result = wait_until("all 400 outcomes at the hub", all_outcomes_counted, 60)
    assert result["verdict"] == "winner" and result["winner"] == "candidate"
    unknown = httpx.post(
        f"{agents[0].url}/v2/models/tiny/feedback", json={"id": "nope", "outcome": 1}, timeout=5
    )
    assert unknown.status_code == 404


def test_a_declared_winner_is_promoted_through_the_approval_path(
    hub, admin, engineer, approver, start_test_agent, workdir
):
    control = publish(engineer, approver).version
    challenger = engineer.upload_model(
        "tiny", make_tiny_onnx(), reference_npy=make_reference_npy()
    ).version
    engineer.change_stage("tiny", challenger, "staging")
    approver.approve_exposure("tiny", challenger)
    start_test_agent("ab-promote")
    spec = {
        "name": "promote-me",
        "model": "tiny",
        "zone": "ae-dxb",
        "variants": [
            {"name": "control", "version": control, "weight": 0.5},
            {"name": "challenger", "version": challenger, "weight": 0.5},
        ],
        "min_samples": 1000,
    }
    for running in [e for e in engineer.list_experiments() if e["status"] == "running"]:
        engineer.stop_experiment(running["name"])  # one experiment per model and group
    engineer.create_experiment(spec)
    with pytest.raises(HubRejectedError) as too_early:
        approver.promote_winner("promote-me")
    assert too_early.value.status_code == 409 and "no winner" in str(too_early.value)
    client, agent_id = _agent_client(hub.url, workdir / "ab-promote")
    _report(client, agent_id, "promote-me", {"control": 0.10, "challenger": 0.14}, 8000, seed=3)
    with pytest.raises(HubRejectedError) as not_an_approver:
        engineer.promote_winner("promote-me")
    assert not_an_approver.value.status_code == 403
    result = approver.promote_winner("promote-me")
    assert (result["winner"], result["status"]) == ("challenger", "stopped")
    stages = {v.version: v.stage for v in engineer.get_model("tiny").versions}
    assert (stages[challenger], stages[control]) == ("production", "archived")
    promoted = [e for e in admin.list_audit(action="experiment.promote")]
    assert promoted and promoted[-1]["detail"]["version"] == challenger
