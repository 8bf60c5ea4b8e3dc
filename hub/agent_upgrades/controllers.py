"""Agent upgrades over HTTP: start and abort (admins), read (anyone who reads agents)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post

from appliance.wire.fleet import AgentUpgradeInfo, NewAgentUpgrade
from hub.agent_upgrades.service import AgentUpgrades
from hub.auth.guards import principal_of, requires
from hub.auth.roles import Permission as P


class AgentUpgradeController(Controller):
    path = "/api/v1/agent-upgrades"
    tags = ["agent upgrades"]

    @post(
        "/",
        operation_id="startAgentUpgrade",
        guards=[requires(P.AGENTS_UPGRADE)],
        sync_to_thread=True,
    )
    def start(
        self, data: NewAgentUpgrade, agent_upgrades: AgentUpgrades, request: Request[Any, Any, Any]
    ) -> AgentUpgradeInfo:
        """Take an agent group to a release the hub holds, ring by ring."""
        return agent_upgrades.start(data, principal_of(request))

    @get(
        "/",
        operation_id="listAgentUpgrades",
        guards=[requires(P.AGENTS_READ)],
        sync_to_thread=True,
    )
    def list_recent(self, agent_upgrades: AgentUpgrades) -> list[AgentUpgradeInfo]:
        return agent_upgrades.recent()

    @get(
        "/{upgrade_id:int}",
        operation_id="getAgentUpgrade",
        guards=[requires(P.AGENTS_READ)],
        sync_to_thread=True,
    )
    def get_one(self, upgrade_id: int, agent_upgrades: AgentUpgrades) -> AgentUpgradeInfo:
        return agent_upgrades.get(upgrade_id)

    @post(
        "/{upgrade_id:int}/abort",
        operation_id="abortAgentUpgrade",
        guards=[requires(P.AGENTS_UPGRADE)],
        status_code=200,
        sync_to_thread=True,
    )
    def abort(
        self, upgrade_id: int, agent_upgrades: AgentUpgrades, request: Request[Any, Any, Any]
    ) -> AgentUpgradeInfo:
        return agent_upgrades.abort(upgrade_id, principal_of(request))
