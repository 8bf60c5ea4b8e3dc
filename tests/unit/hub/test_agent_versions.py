"""The release each agent runs, as the hub knows it: said at enrolment, then in every
heartbeat, so an agent upgraded (or rolled back) on its host shows its new version."""

from __future__ import annotations

from pathlib import Path

from appliance.wire.fleet import Heartbeat
from hub.db import session_scope
from hub.fleet.records import AgentRecord
from tests.harness.trust import hub_services


def test_heartbeats_carry_the_release_the_agent_runs_now(tmp_path: Path) -> None:
    services = hub_services(tmp_path / "hub")
    with session_scope(services.engine) as session:
        record = AgentRecord(name="edge-1", zone="ae-dxb", runtime="onnx", software_version="0.1.0")
        session.add(record)
        session.flush()
        agent_id = record.id or 0
    fleet = services.fleet
    assert fleet.get_agent(agent_id).software_version == "0.1.0"  # what enrolment said

    assert (
        fleet.heartbeat(agent_id, Heartbeat(software_version="0.1.1")).software_version == "0.1.1"
    )
    assert fleet.list_agents()[0].software_version == "0.1.1"
    # an agent of 0.1.0 sends no version: what the hub knew stays
    assert fleet.heartbeat(agent_id, Heartbeat()).software_version == "0.1.1"
