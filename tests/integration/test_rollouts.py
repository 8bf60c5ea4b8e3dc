"""A canary rollout on real processes: ring 2 breaks its drift gate and is rolled back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from appliance.cli.demo.processes import ServiceProcess
from appliance.cli.demo.site import Site
from appliance.errors import HubRejectedError
from tests.harness.models import make_reference_npy, make_tiny_onnx
from tests.harness.site import (
    MODEL,
    agent_status,
    infer_rows,
    publish,
    running_hub,
    serving_version,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST = {
    "APPLIANCE_DRIFT_WINDOW_ROWS": "200",
    "APPLIANCE_DRIFT_EVERY_REQUESTS": "100",
    "APPLIANCE_DRIFT_CHECK_S": "0.5",
    "APPLIANCE_SERVING_REPORT_S": "0.5",
}


@pytest.fixture(scope="module")
def hub(site: Site) -> Iterator[ServiceProcess]:
    """This module's hub judges rollout rings every second."""
    with running_hub(site, env={"APPLIANCE_ROLLOUT_CHECK_S": "1"}) as proc:
        yield proc


def test_ring_two_breaks_its_gate_and_the_rollout_rolls_back(
    hub, admin, engineer, approver, start_agent
):
    first = publish(engineer, approver).version
    agents = [start_agent(f"canary-{i}", env=FAST) for i in (1, 2, 3)]
    for agent in agents:
        wait_until("v1 everywhere", lambda a=agent: serving_version(a) == str(first))
    second = engineer.upload_model(
        MODEL, make_tiny_onnx(), reference_npy=make_reference_npy()
    ).version
    engineer.change_stage(MODEL, second, "staging")
    rollout = approver.start_rollout(
        {
            "model": MODEL,
            "version": second,
            "zone": "ae-dxb",
            "rings": [0.3, 0.6, 1.0],
            "soak_s": 15,
        }
    )
    assert rollout["ring"] == 1 and len(rollout["agents_reached"]) == 1
    wait_until("ring 1 on v2", lambda: serving_version(agents[0]) == str(second))
    assert serving_version(agents[1]) == str(first) and serving_version(agents[2]) == str(first)
    ring2 = approver.act_on_rollout(rollout["id"], "promote")  # skip ring 1's soak
    assert ring2["ring"] == 2 and len(ring2["agents_reached"]) == 2
    wait_until("ring 2 on v2", lambda: serving_version(agents[1]) == str(second))
    assert serving_version(agents[2]) == str(first)
    wait_until(
        "the drift watch", lambda: agent_status(agents[1].url)["drift"].get(f"{MODEL}/{second}")
    )
    rng = np.random.default_rng(0)
    deadline = time.monotonic() + 90  # traffic paced while the gate watches; a loaded box is slow
    while approver.rollout(rollout["id"])["state"] == "running" and time.monotonic() < deadline:
        infer_rows(agents[1].url, (rng.standard_normal((100, 4)) + 3).astype(np.float32))
        time.sleep(0.7)
    final = approver.rollout(rollout["id"])
    assert final["state"] == "rolled_back", final["steps"]
    assert "drift alert" in final["steps"][-1]["note"]
    for agent in agents:
        wait_until("back on v1", lambda a=agent: serving_version(a) == str(first), 60)
    stages = {v.version: v.stage for v in engineer.get_model(MODEL).versions}
    assert stages[second] == "staging"  # it never reached production
    audit = [e for e in admin.list_audit(limit=500) if e["action"].startswith("rollout.")]
    assert [e["action"] for e in audit] == [
        "rollout.start",
        "rollout.promote",  # the operator's action …
        "rollout.advance",  # … and the ring it moved to
        "rollout.roll_back",
    ]


def test_a_healthy_rollout_passes_every_ring_and_reaches_production(
    engineer, approver, start_agent
):
    agents = [start_agent(f"healthy-{i}", env=FAST) for i in (1, 2)]
    current = {v.version for v in engineer.get_model(MODEL).versions if v.stage == "production"}
    for agent in agents:
        wait_until(
            "the production version",
            lambda a=agent: serving_version(a) in {str(v) for v in current},
        )
    newer = engineer.upload_model(
        MODEL, make_tiny_onnx(), reference_npy=make_reference_npy()
    ).version
    engineer.change_stage(MODEL, newer, "staging")
    rollout = approver.start_rollout(
        {"model": MODEL, "version": newer, "zone": "ae-dxb", "rings": [0.5, 1.0], "soak_s": 2}
    )
    done = wait_until(
        "the rollout to finish",
        lambda: (r := approver.rollout(rollout["id"]))["state"] != "running" and r,
        90,
    )
    assert done["state"] == "completed", done["steps"]
    assert [s["action"] for s in done["steps"]] == ["start", "advance", "complete"]
    stages = {v.version: v.stage for v in engineer.get_model(MODEL).versions}
    assert stages[newer] == "production"
    for agent in agents:
        wait_until("the new version everywhere", lambda a=agent: serving_version(a) == str(newer))


def _states(admin, version: int) -> dict[str, str]:
    """Agent name → state of ``version`` on it, as its last heartbeat told the hub."""
    return {
        a.name: next((m.state for m in a.models if m.version == version), "absent")
        for a in admin.list_agents()
        if a.revoked_at is None
    }


def _staged(engineer) -> int:
    newer = engineer.upload_model(
        MODEL, make_tiny_onnx(), reference_npy=make_reference_npy()
    ).version
    engineer.change_stage(MODEL, newer, "staging")
    return newer


def test_blue_green_loads_beside_then_switches_every_agent_at_once(
    admin, engineer, approver, start_agent
):
    start_agent("blue-1", env=FAST)
    old = next(v.version for v in engineer.get_model(MODEL).versions if v.stage == "production")
    wait_until(
        "every agent on the production version",
        lambda: set(_states(admin, old).values()) == {"ready"},
    )
    new = _staged(engineer)
    rollout = approver.start_rollout(
        {"model": MODEL, "version": new, "zone": "ae-dxb", "strategy": "blue-green", "soak_s": 60}
    )
    assert (rollout["ring_count"], rollout["agents_reached"]) == (2, [])
    loaded = wait_until(
        "the new version loaded beside the old on every agent",
        lambda: (r := approver.rollout(rollout["id"]))["ring"] == 2 and r,
        90,
    )
    assert [s["action"] for s in loaded["steps"]] == ["start", "advance"]
    assert loaded["steps"][-1]["note"].startswith("switched at once")
    assert set(_states(admin, new).values()) <= {"standby", "ready"}  # nobody downloads now
    wait_until(
        "every agent answering with the new version, the old one kept beside",
        lambda: (
            set(_states(admin, new).values()) == {"ready"}
            and set(_states(admin, old).values()) == {"standby"}
        ),
        60,
    )
    done = approver.act_on_rollout(rollout["id"], "promote")  # end the soak now
    wait_until(
        "production", lambda: (r := approver.rollout(rollout["id"]))["state"] == "completed" and r
    )
    assert {v.version: v.stage for v in engineer.get_model(MODEL).versions}[new] == "production"
    assert done["strategy"] == "blue-green"
    wait_until("the old version unloaded", lambda: set(_states(admin, old).values()) == {"absent"})


def test_named_agents_make_the_first_ring(admin, engineer, approver, start_agent):
    pilot = start_agent("pilot-site", env=FAST)
    new = _staged(engineer)
    with pytest.raises(HubRejectedError) as unknown:
        approver.start_rollout(
            {"model": MODEL, "version": new, "zone": "ae-dxb", "first_agents": ["nobody"]}
        )
    assert unknown.value.status_code == 400 and "nobody" in str(unknown.value)
    rollout = approver.start_rollout(
        {
            "model": MODEL,
            "version": new,
            "zone": "ae-dxb",
            "first_agents": ["pilot-site"],
            "rings": [1.0],
            "soak_s": 600,
        }
    )
    pilot_id = next(a.id for a in admin.list_agents() if a.name == "pilot-site")
    assert (rollout["ring_count"], rollout["agents_reached"]) == (2, [pilot_id])
    wait_until("the pilot on the new version", lambda: serving_version(pilot) == str(new))
    everyone = approver.act_on_rollout(rollout["id"], "promote")
    assert len(everyone["agents_reached"]) == len(_states(admin, new))
    approver.act_on_rollout(rollout["id"], "abort")


def test_rollouts_are_for_approvers_and_staging_versions(engineer, approver):
    spec = {"model": MODEL, "version": 1, "zone": "ae-dxb"}
    with pytest.raises(HubRejectedError) as refused:
        engineer.start_rollout(spec)
    assert refused.value.status_code == 403
    with pytest.raises(HubRejectedError) as wrong_stage:
        approver.start_rollout(spec)  # v1 is not in staging any more
    assert wrong_stage.value.status_code == 409
    with pytest.raises(HubRejectedError) as bad_rings:
        approver.start_rollout({**spec, "rings": [0.5, 0.4, 1.0]})
    assert bad_rings.value.status_code == 400
    with pytest.raises(HubRejectedError) as named_blue_green:
        approver.start_rollout({**spec, "strategy": "blue-green", "first_agents": ["a"]})
    assert named_blue_green.value.status_code == 400
