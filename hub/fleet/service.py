"""Agents: registration, heartbeats and what each should run."""

from __future__ import annotations

import msgspec
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlmodel import Session, col, select

from appliance.clock import iso_utc, utcnow
from appliance.errors import NotFoundError
from appliance.schemas import AgentInfo, AgentRegistration, Assignment, Heartbeat, InstalledModel
from hub.db import session_scope
from hub.records import AgentRecord
from hub.registry.service import RegistryService, check_model_name


def _agent_info(record: AgentRecord) -> AgentInfo:
    return AgentInfo(
        id=record.id or 0,
        name=record.name,
        zone=record.zone,
        runtime=record.runtime,
        labels=dict(record.labels),
        url=record.url,
        registered_at=iso_utc(record.registered_at),
        last_seen_at=iso_utc(record.last_seen_at) if record.last_seen_at else None,
        health=record.health,
        detail=record.detail,
        models=msgspec.convert(record.models, list[InstalledModel]),
    )


class FleetService:
    def __init__(self, engine: Engine, registry: RegistryService) -> None:
        self.engine = engine
        self.registry = registry

    def register(self, data: AgentRegistration) -> AgentInfo:
        """Create the agent, or update it if one of that name registered before."""
        check_model_name(data.name)  # the same rules keep agent names URL- and file-safe
        for _ in range(2):
            try:
                with session_scope(self.engine) as session:
                    record = session.exec(
                        select(AgentRecord).where(AgentRecord.name == data.name)
                    ).first() or AgentRecord(name=data.name, zone=data.zone, runtime=data.runtime)
                    record.zone = data.zone
                    record.runtime = data.runtime
                    record.labels = dict(data.labels)
                    record.url = data.url
                    record.software_version = data.software_version
                    record.last_seen_at = utcnow()
                    session.add(record)
                    session.flush()
                    return _agent_info(record)
            except SAIntegrityError:
                continue  # registered concurrently under the same name: update it instead
        raise AssertionError("unreachable")

    def heartbeat(self, agent_id: int, beat: Heartbeat) -> AgentInfo:
        with session_scope(self.engine) as session:
            record = session.get(AgentRecord, agent_id)
            if record is None:
                raise NotFoundError(f"no agent with id {agent_id}", hint="register the agent again")
            record.last_seen_at = utcnow()
            record.health = beat.health
            record.detail = beat.detail
            record.models = msgspec.to_builtins(beat.models)
            session.add(record)
            session.flush()
            return _agent_info(record)

    def list_agents(self) -> list[AgentInfo]:
        with Session(self.engine) as session:
            return [
                _agent_info(r)
                for r in session.exec(select(AgentRecord).order_by(col(AgentRecord.name)))
            ]

    def get_agent(self, agent_id: int) -> AgentInfo:
        with Session(self.engine) as session:
            record = session.get(AgentRecord, agent_id)
            if record is None:
                raise NotFoundError(f"no agent with id {agent_id}")
            return _agent_info(record)

    def assignments(self, agent_id: int) -> list[Assignment]:
        self.get_agent(agent_id)
        return self.registry.production_assignments()
