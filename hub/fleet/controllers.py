"""HTTP endpoints for agents: register, heartbeat, and what to run."""

from __future__ import annotations

from litestar import Controller, get, post

from appliance.schemas import AgentInfo, AgentRegistration, Assignment, Heartbeat
from hub.fleet.service import FleetService


class AgentController(Controller):
    path = "/api/v1/agents"
    tags = ["agents"]

    @get("/", operation_id="listAgents", sync_to_thread=True)
    def list_agents(self, fleet: FleetService) -> list[AgentInfo]:
        return fleet.list_agents()

    @post("/", operation_id="registerAgent", status_code=200, sync_to_thread=True)
    def register(self, data: AgentRegistration, fleet: FleetService) -> AgentInfo:
        return fleet.register(data)

    @get("/{agent_id:int}", operation_id="getAgent", sync_to_thread=True)
    def get_agent(self, agent_id: int, fleet: FleetService) -> AgentInfo:
        return fleet.get_agent(agent_id)

    @post(
        "/{agent_id:int}/heartbeat",
        operation_id="agentHeartbeat",
        status_code=200,
        sync_to_thread=True,
    )
    def heartbeat(self, agent_id: int, data: Heartbeat, fleet: FleetService) -> AgentInfo:
        return fleet.heartbeat(agent_id, data)

    @get("/{agent_id:int}/assignments", operation_id="agentAssignments", sync_to_thread=True)
    def assignments(self, agent_id: int, fleet: FleetService) -> list[Assignment]:
        return fleet.assignments(agent_id)
