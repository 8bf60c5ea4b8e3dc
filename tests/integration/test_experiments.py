"""A/B experiments on a real hub: outcomes arrive as agents' reports, the verdict follows."""

from __future__ import annotations

import numpy as np
import pytest

from agent.identity import credentials, load_identity
from appliance.errors import HubRejectedError
from appliance.hub_client import HubClient
from appliance.schemas import AgentReport
from tests.integration.conftest import publish

pytestmark = pytest.mark.integration


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
    assert len(client.send_reports(agent_id, reports)) == len(reports)


def test_an_experiment_reaches_a_verdict_from_agent_reports(
    hub, engineer, approver, start_agent, workdir
):
    first = publish(engineer, approver).version
    second = publish(engineer, approver).version
    agent = start_agent("ab-1")
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
