"""Agents: heartbeats, what each should run, and who may see which agent."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from appliance.clock import iso_utc, utcnow
from appliance.errors import NotFoundError, PermissionDeniedError
from appliance.wire.fleet import (
    AgentAssignments,
    AgentInfo,
    Heartbeat,
    InstalledModel,
    RefusedAssignment,
    SoftwareTarget,
)
from hub.auth.principal import Principal
from hub.db import session_scope
from hub.fleet.records import AgentRecord, ReportRefusalRecord
from hub.fleet.standing import AgentStanding
from hub.pagination import page_after
from hub.registry.service import RegistryService
from hub.residency.gate import ResidencyGate


def agent_info(
    record: AgentRecord,
    *,
    standing: AgentStanding | None = None,
    refusal: ReportRefusalRecord | None = None,
) -> AgentInfo:
    """The agent as the hub sees it: with ``standing``, the hub's own judgement of its
    health (:mod:`hub.fleet.standing`) overrides what the agent last said."""
    health, detail = standing.judge(record, refusal) if standing else (record.health, record.detail)
    return AgentInfo(
        id=record.id or 0,
        name=record.name,
        zone=record.zone,
        group=record.group,
        runtime=record.runtime,
        labels=dict(record.labels),
        url=record.url,
        registered_at=iso_utc(record.registered_at),
        last_seen_at=iso_utc(record.last_seen_at) if record.last_seen_at else None,
        health=health,
        detail=detail,
        models=msgspec.convert(record.models, list[InstalledModel]),
        enrolled_at=iso_utc(record.enrolled_at) if record.enrolled_at else None,
        revoked_at=iso_utc(record.revoked_at) if record.revoked_at else None,
        software_version=record.software_version,
    )


def check_agent_scope(principal: Principal, agent_id: int) -> None:
    """An agent may touch only its own records; anything else does not exist for it."""
    if principal.kind == "agent" and principal.id != agent_id:
        raise NotFoundError(f"no agent with id {agent_id}")


class FleetService:
    def __init__(
        self,
        engine: Engine,
        registry: RegistryService,
        gate: ResidencyGate,
        *,
        sealed_only: bool = False,
        standing: AgentStanding | None = None,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.gate = gate
        self.policy = gate.policy
        self.sealed_only = sealed_only
        """Models are sealed to each agent (``APPLIANCE_ENCRYPT_MODELS``): agents may not
        download the plain bundle beside their sealed copy."""
        self.standing = standing or AgentStanding()
        self.heartbeat_hooks: list[Callable[[int, Heartbeat], None]] = []
        """Told of every heartbeat once it is recorded (agent upgrades read failures)."""
        self.software_for: Callable[[int, str, str], SoftwareTarget | None] | None = None
        """The release an agent (id, zone, group) is asked to run, if any."""

    def heartbeat(self, agent_id: int, beat: Heartbeat) -> AgentInfo:
        with session_scope(self.engine) as session:
            record = session.get(AgentRecord, agent_id)
            if record is None:
                raise NotFoundError(f"no agent with id {agent_id}")
            record.last_seen_at = utcnow()
            record.health = beat.health
            record.detail = beat.detail
            record.models = msgspec.to_builtins(beat.models)
            if beat.software_version:
                record.software_version = beat.software_version[:64]
            session.add(record)
            session.flush()
            info = agent_info(record)
        for hook in self.heartbeat_hooks:
            hook(agent_id, beat)
        return info

    def list_agents(self, *, after_id: int = 0, limit: int = 100) -> list[AgentInfo]:
        with Session(self.engine) as session:
            rows = session.exec(
                page_after(select(AgentRecord), col(AgentRecord.id), after_id, limit)
            ).all()
            refusals = {
                r.agent_id: r
                for r in session.exec(
                    select(ReportRefusalRecord).where(
                        col(ReportRefusalRecord.agent_id).in_([r.id for r in rows])
                    )
                )
            }
            return [
                agent_info(r, standing=self.standing, refusal=refusals.get(r.id or 0)) for r in rows
            ]

    def get_agent(self, agent_id: int) -> AgentInfo:
        with Session(self.engine) as session:
            record = session.get(AgentRecord, agent_id)
            if record is None:
                raise NotFoundError(f"no agent with id {agent_id}")
            refusal = session.get(ReportRefusalRecord, agent_id)
            return agent_info(record, standing=self.standing, refusal=refusal)

    def assignments(self, agent_id: int) -> AgentAssignments:
        """Production versions this agent may run; the others with the rule that refuses them."""
        agent = self.get_agent(agent_id)
        allowed, refused = [], []
        for assignment, zones in self.registry.production_assignments():
            decision = self.policy.decide("deploy", agent.zone, zones)
            if decision.allowed:
                allowed.append(assignment)
            else:
                refused.append(
                    RefusedAssignment(
                        name=assignment.name,
                        version=assignment.version,
                        rule=decision.rule,
                        reason=decision.reason,
                    )
                )
        software = (
            self.software_for(agent.id, agent.zone, agent.group) if self.software_for else None
        )
        return AgentAssignments(models=allowed, refused=refused, software=software)

    def check_bundle_access(
        self, principal: Principal, name: str, version: int, source: str | None = None
    ) -> None:
        """Agents may fetch only a bundle assigned to them, and only where residency allows."""
        if principal.kind != "agent":
            return
        if self.sealed_only:
            raise PermissionDeniedError(
                "agents receive models sealed to their own key, through the update metadata",
                hint="this hub encrypts models per agent; plain bundles are for people",
            )
        agent = self.get_agent(principal.id)
        assigned = {
            (a.name, a.version): zones for a, zones in self.registry.production_assignments()
        }
        zones = assigned.get((name, version))
        if zones is None:
            raise NotFoundError(f"model {name!r} version {version} is not assigned to this agent")
        with session_scope(self.engine) as session:
            self.gate.check(
                session,
                flow="deploy",
                actor=principal.actor,
                subject_zone=agent.zone,
                object_zones=zones,
                target=f"model:{name}/{version} to agent:{agent.name}",
                source=source,
            )
