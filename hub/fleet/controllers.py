"""HTTP endpoints for agents: enrolment, heartbeat, what to run, revocation, and the
bundle download (a registry path, guarded by what the fleet assigns)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.response import File

from appliance.wire.fleet import AgentAssignments, AgentInfo, EnrolmentRequest, Heartbeat
from hub.auth.guards import client_address, open_endpoint, principal_of, requires
from hub.auth.roles import Permission
from hub.fleet.enrolment import EnrolmentService, EnrolmentTokenInfo
from hub.fleet.service import FleetService, check_agent_scope
from hub.pagination import After, Limit
from hub.registry.service import RegistryService

P = Permission


class NewEnrolmentToken(msgspec.Struct, forbid_unknown_fields=True):
    zone: str
    group: str = "default"
    ttl_s: int = 24 * 3600


class AgentController(Controller):
    path = "/api/v1/agents"
    tags = ["agents"]

    @get("/", operation_id="listAgents", guards=[requires(P.AGENTS_READ)], sync_to_thread=True)
    def list_agents(
        self, fleet: FleetService, after: After = 0, limit: Limit = 100
    ) -> list[AgentInfo]:
        return fleet.list_agents(after_id=after, limit=limit)

    @post(
        "/enrolment-tokens",
        operation_id="createEnrolmentToken",
        guards=[requires(P.AGENTS_ENROL)],
        sync_to_thread=True,
    )
    def create_token(
        self, data: NewEnrolmentToken, enrolment: EnrolmentService, request: Request[Any, Any, Any]
    ) -> EnrolmentTokenInfo:
        return enrolment.create_token(principal_of(request), data.zone, data.group, data.ttl_s)

    @post("/enrol", operation_id="enrolAgent", guards=[open_endpoint], sync_to_thread=True)
    def enrol(
        self, data: EnrolmentRequest, enrolment: EnrolmentService, request: Request[Any, Any, Any]
    ) -> AgentInfo:
        """Open, but the one-time enrolment token in the body must be valid."""
        return enrolment.enrol(data, source=client_address(request))

    @get(
        "/{agent_id:int}",
        operation_id="getAgent",
        guards=[requires(P.AGENTS_READ, P.AGENT_SELF)],
        sync_to_thread=True,
    )
    def get_agent(
        self, agent_id: int, fleet: FleetService, request: Request[Any, Any, Any]
    ) -> AgentInfo:
        check_agent_scope(principal_of(request), agent_id)
        return fleet.get_agent(agent_id)

    @post(
        "/{agent_id:int}/revoke",
        operation_id="revokeAgent",
        status_code=200,
        guards=[requires(P.AGENTS_REVOKE)],
        sync_to_thread=True,
    )
    def revoke(
        self, agent_id: int, enrolment: EnrolmentService, request: Request[Any, Any, Any]
    ) -> AgentInfo:
        return enrolment.revoke(principal_of(request), agent_id)

    @post(
        "/{agent_id:int}/heartbeat",
        operation_id="agentHeartbeat",
        status_code=200,
        guards=[requires(P.AGENT_SELF)],
        sync_to_thread=True,
    )
    def heartbeat(
        self, agent_id: int, data: Heartbeat, fleet: FleetService, request: Request[Any, Any, Any]
    ) -> AgentInfo:
        check_agent_scope(principal_of(request), agent_id)
        return fleet.heartbeat(agent_id, data)

    @get(
        "/{agent_id:int}/assignments",
        operation_id="agentAssignments",
        guards=[requires(P.AGENTS_READ, P.AGENT_SELF)],
        sync_to_thread=True,
    )
    def assignments(
        self, agent_id: int, fleet: FleetService, request: Request[Any, Any, Any]
    ) -> AgentAssignments:
        check_agent_scope(principal_of(request), agent_id)
        return fleet.assignments(agent_id)


class BundleController(Controller):
    """A model version's plain bundle: for people who may read models, and for an agent
    only when the fleet assigns it that version where residency allows."""

    path = "/api/v1/models"
    tags = ["models"]

    @get(
        "/{name:str}/versions/{version:int}/bundle",
        operation_id="downloadModelBundle",
        guards=[requires(P.MODELS_READ, P.AGENT_SELF)],
        sync_to_thread=True,
    )
    def download_bundle(
        self,
        name: str,
        version: int,
        registry: RegistryService,
        fleet: FleetService,
        request: Request[Any, Any, Any],
    ) -> File:
        fleet.check_bundle_access(principal_of(request), name, version, client_address(request))
        path, info = registry.bundle_file(name, version)
        return File(
            path=path,
            filename=f"{name}-{version}.bundle.tar",
            media_type="application/x-tar",
            headers={"X-Bundle-SHA256": info.bundle_sha256},
        )
