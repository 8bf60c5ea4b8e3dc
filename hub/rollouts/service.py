"""Canary rollouts: ring by ring, each held to health gates, rolled back on its own.

A rollout takes a staging version of a model to one agent group. Ring ``k``
covers the first ``ceil(rings[k] * n)`` of the group's agents (by id); the
agents reached so far are pinned to the new version in the group's signed
index, the rest keep the production version. After ``soak_s`` in a ring, the
gates are read from what agents reported since the ring began:

* the new version is loaded on every agent of the ring (it passed its test
  vectors and probation there);
* its error rate is at most ``max_error_rate``;
* its p95 latency is at most ``max_p95_ratio`` times the previous version's, where
  both had at least ``MIN_REQUESTS_FOR_LATENCY`` requests (a few requests to a cold
  model say nothing about its latency);
* no drift alert is open for it on those agents.

A failing gate rolls every ring back at once (the pins go; agents return to
the production version) and the rollout stops. The last ring passing promotes
the version to production through the registry, as the approver who started
the rollout; when that promotion is refused (the site needs more approvals for
production than it holds), the rollout is rolled back too, never left serving.

Starting a rollout is live traffic before production, so the version must be
cleared by the one serving policy (:mod:`hub.registry.serving_policy`): the
starter's own exposure approval is recorded, and the version needs as many
such approvals from people other than its author as the site needs for
production. Soaks are at most ``max_soak_s``. Operators can pause, resume,
promote (skip the rest of a soak) or abort. Every step is kept on the rollout and audited.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any, Literal

import msgspec
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from appliance.clock import as_utc, iso_utc, utcnow
from appliance.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    UnprocessableInputError,
)
from appliance.wire.releases import RolloutInfo
from hub.audit.schemas import Outcome
from hub.audit.service import AuditLog
from hub.auth.principal import Principal
from hub.auth.roles import permissions_for
from hub.db import session_scope
from hub.events import Changes
from hub.fleet.records import AgentRecord
from hub.fleet.rings import checked_rings, first_share, group_members, with_step
from hub.monitoring.records import AgentReportRecord, DriftAlertRecord
from hub.registry.service import RegistryService
from hub.rollouts.records import RolloutRecord

ACTIVE = ("running", "paused")
INSTALL_GRACE_S = 120.0
MIN_REQUESTS_FOR_LATENCY = 100
"""Fewer requests on either version than this: p95 latency is not compared (too noisy)."""
"""How long past the soak a ring agent may take to start serving the new version."""


Strategy = Literal["canary", "all-at-once", "blue-green"]


class NewRollout(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    model: str
    version: int
    zone: str
    group: str = "default"
    strategy: Strategy = "canary"
    rings: list[float] = msgspec.field(default_factory=lambda: [0.05, 0.25, 1.0])
    """Canary only: cumulative shares of the group's agents, the last one 1.0."""
    first_agents: list[str] = []
    """Canary only: these agents (by name) make the first ring, before the shares."""
    soak_s: float = 300.0
    max_error_rate: float = 0.02
    max_p95_ratio: float = 1.5


class RolloutService:
    def __init__(
        self,
        engine: Engine,
        registry: RegistryService,
        audit: AuditLog,
        *,
        max_soak_s: float = 7 * 24 * 3600.0,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.audit = audit
        self.max_soak_s = max_soak_s
        self.changes = Changes()
        """Told when the pins change: agents' signed metadata must follow."""

    # -- who is pinned -------------------------------------------------------------------

    def _members(self, session: Session, zone: str, group: str) -> list[tuple[int, str]]:
        return group_members(session, zone, group)

    def _reached(self, session: Session, record: RolloutRecord) -> list[int]:
        """The agents the new version answers for in the current ring."""
        members = self._members(session, record.zone, record.group)
        if record.strategy == "blue-green":
            return [] if record.ring == 0 else [i for i, _ in members]
        if not record.first_agents:
            return [i for i, _ in first_share(members, record.rings[record.ring])]
        order = {name: k for k, name in enumerate(record.first_agents)}
        named = sorted((m for m in members if m[1] in order), key=lambda m: order[m[1]])
        rest = [m for m in members if m[1] not in order]
        if record.ring > 0:
            named += rest[: math.ceil(record.rings[record.ring - 1] * len(rest))]
        return [i for i, _ in named]

    def _standby(self, session: Session, record: RolloutRecord) -> tuple[list[int], int | None]:
        """Blue-green: the agents holding a version loaded beside, and which version."""
        if record.strategy != "blue-green":
            return [], None
        version = record.version if record.ring == 0 else record.previous
        if version is None:
            return [], None
        return [i for i, _ in self._members(session, record.zone, record.group)], version

    def standby_for(self, zone: str, group: str) -> dict[str, dict[str, int]]:
        """Agent id → model → version that blue-green rollouts keep loaded beside."""
        standby: dict[str, dict[str, int]] = {}
        with Session(self.engine) as session:
            for record in self._active(session, zone, group):
                agents, version = self._standby(session, record)
                for agent_id in agents:
                    standby.setdefault(str(agent_id), {})[record.model] = version or 0
        return standby

    def _active(self, session: Session, zone: str, group: str) -> list[RolloutRecord]:
        return list(
            session.exec(
                select(RolloutRecord).where(
                    RolloutRecord.zone == zone,
                    RolloutRecord.group == group,
                    col(RolloutRecord.state).in_(ACTIVE),
                )
            )
        )

    def pins_for(self, zone: str, group: str) -> dict[str, dict[str, int]]:
        """Agent id → model → version for the agents active rollouts have reached."""
        pins: dict[str, dict[str, int]] = {}
        with Session(self.engine) as session:
            for record in self._active(session, zone, group):
                for agent_id in self._reached(session, record):
                    pins.setdefault(str(agent_id), {})[record.model] = record.version
        return pins

    # -- operator actions ----------------------------------------------------------------

    def create(self, spec: NewRollout, by: Principal) -> RolloutInfo:
        rings = _rings(spec)
        if not 0 <= spec.soak_s <= self.max_soak_s:
            raise UnprocessableInputError(
                f"soak_s: {spec.soak_s} is outside 0 to {self.max_soak_s:.0f} seconds",
                hint="a soak longer than the site's maximum (APPLIANCE_MAX_SOAK_S) would keep "
                "an unpromoted version serving for that long",
            )
        if not 0 <= spec.max_error_rate <= 1 or not 0 < spec.max_p95_ratio < math.inf:
            raise InvalidInputError("max_error_rate and max_p95_ratio are out of range")
        info = self.registry.get_version(spec.model, spec.version)
        if info.stage != "staging":
            raise ConflictError(
                f"{spec.model} v{spec.version} is {info.stage}",
                hint="a rollout takes a staging version to production",
            )
        self.registry.approve_exposure(spec.model, spec.version, by=by, strict=False)
        self.registry.serving.require(spec.model, spec.version, "rollout")
        model = self.registry.get_model(spec.model)
        previous = next((v.version for v in model.versions if v.stage == "production"), None)
        with session_scope(self.engine) as session:
            busy = session.exec(
                select(RolloutRecord).where(
                    RolloutRecord.model == spec.model,
                    RolloutRecord.zone == spec.zone,
                    RolloutRecord.group == spec.group,
                    col(RolloutRecord.state).in_(ACTIVE),
                )
            ).first()
            if busy is not None:
                raise ConflictError(
                    f"rollout {busy.id} of {spec.model} is {busy.state} in this group",
                    hint="abort it or let it finish first",
                )
            named = {name for _, name in self._members(session, spec.zone, spec.group)}
            unknown = sorted(set(spec.first_agents) - named)
            if unknown:
                raise InvalidInputError(
                    f"first_agents: {', '.join(unknown)} not in {spec.zone}/{spec.group}",
                    hint="name enrolled, unrevoked agents of the group ('appliance agent list')",
                )
            record = RolloutRecord(
                model=spec.model,
                version=spec.version,
                previous=previous,
                zone=spec.zone,
                group=spec.group,
                strategy=spec.strategy,
                rings=rings,
                first_agents=list(spec.first_agents),
                soak_s=spec.soak_s,
                max_error_rate=spec.max_error_rate,
                max_p95_ratio=spec.max_p95_ratio,
                created_by=by.actor,
            )
            self._step(session, record, by.actor, "start", _ring_name(record))
            session.add(record)
            session.flush()
            rollout_id = record.id or 0
        self.changes.announce(by.actor, f"rollout {rollout_id} started")
        return self.get(rollout_id)

    def act(self, rollout_id: int, action: str, by: Principal) -> RolloutInfo:
        with session_scope(self.engine) as session:
            record = self._record(session, rollout_id)
            allowed = {
                "pause": ("running",),
                "resume": ("paused",),
                "abort": ACTIVE,
                "promote": ("running", "paused"),
            }
            if action not in allowed:
                raise InvalidInputError(f"action: one of {', '.join(allowed)}")
            if record.state not in allowed[action]:
                raise ConflictError(f"rollout {rollout_id} is {record.state}; cannot {action}")
            if action == "pause":
                record.state = "paused"
            elif action == "resume":
                record.state, record.ring_started_at = "running", utcnow()
            elif action == "abort":
                record.state = "aborted"
            self._step(session, record, by.actor, action, "by an operator")
            session.add(record)
        if action == "promote":
            self._advance(rollout_id, by.actor, "promoted by an operator")
        self.changes.announce(by.actor, f"rollout {rollout_id}: {action}")
        return self.get(rollout_id)

    # -- the gates -------------------------------------------------------------------------

    def evaluate(self) -> list[str]:
        """The scheduler's job: judge every running rollout whose ring has soaked."""
        happened = []
        with Session(self.engine) as session:
            due = [
                r.id or 0
                for r in session.exec(select(RolloutRecord).where(RolloutRecord.state == "running"))
                if utcnow() - as_utc(r.ring_started_at) >= timedelta(seconds=_soak_s(r))
            ]
        for rollout_id in due:
            failures = self._gate_failures(rollout_id)
            if failures is None:
                continue  # a ring agent is still installing: the soak waits for it
            if failures:
                self._roll_back(rollout_id, failures)
                happened.append(f"rollout {rollout_id} rolled back: {'; '.join(failures)}")
            else:
                happened.append(self._advance(rollout_id, "system", "gates passed"))
        for line in happened:
            self.changes.announce("system", line)
        return happened

    def _gate_failures(self, rollout_id: int) -> list[str] | None:
        """Why the ring fails its gates ([] if it passes); None while it is still installing.

        An agent not serving the version yet is given ``INSTALL_GRACE_S`` beyond the
        soak (downloads and test vectors take time on small boxes); after that, not
        serving is a failure, with the agent's own reason from its heartbeat.
        """
        with Session(self.engine) as session:
            record = self._record(session, rollout_id)
            loading = record.strategy == "blue-green" and record.ring == 0
            reached = set(
                self._standby(session, record)[0] if loading else self._reached(session, record)
            )
            since = as_utc(record.ring_started_at)
            patience = timedelta(seconds=_soak_s(record) + INSTALL_GRACE_S)
            failures = []
            for agent in session.exec(select(AgentRecord).where(col(AgentRecord.id).in_(reached))):
                serving = {
                    (m.get("name"), m.get("version"))
                    for m in agent.models
                    if loading or m.get("state", "ready") != "standby"
                }
                if (record.model, record.version) in serving:
                    continue
                refused = f"{record.model} v{record.version}" in (agent.detail or "")
                if utcnow() - since < patience and not refused:
                    return None
                failures.append(
                    f"v{record.version} is not {'loaded' if loading else 'serving'} on agent "
                    f"{agent.name}" + (f" ({agent.detail})" if agent.detail else "")
                )
            if loading:
                return failures  # no traffic on it yet: loaded everywhere is the gate
            alerts = session.exec(
                select(DriftAlertRecord).where(
                    DriftAlertRecord.model == record.model,
                    DriftAlertRecord.version == record.version,
                    col(DriftAlertRecord.agent_id).in_(reached),
                    col(DriftAlertRecord.closed_at).is_(None),
                )
            ).all()
            if alerts:
                failures.append(
                    f"drift alert open on agent(s) {sorted(a.agent_id for a in alerts)}"
                )
            new, old = self._serving(session, record, reached, since)
            if new["requests"] and new["errors"] / new["requests"] > record.max_error_rate:
                failures.append(
                    f"error rate {new['errors'] / new['requests']:.1%} above "
                    f"{record.max_error_rate:.1%}"
                )
            judged = min(new["requests"], old["requests"]) >= MIN_REQUESTS_FOR_LATENCY
            if judged and new["p95"] > record.max_p95_ratio * old["p95"] > 0:
                failures.append(
                    f"p95 latency {new['p95'] * 1e3:.1f} ms above {record.max_p95_ratio}x the "
                    f"previous version's {old['p95'] * 1e3:.1f} ms"
                )
            return failures

    def _serving(
        self, session: Session, record: RolloutRecord, reached: set[int], since: Any
    ) -> tuple[dict[str, float], dict[str, float]]:
        new = {"requests": 0.0, "errors": 0.0, "p95": 0.0}
        old = {"requests": 0.0, "errors": 0.0, "p95": 0.0}
        for report in session.exec(
            select(AgentReportRecord).where(
                AgentReportRecord.kind == "serving", col(AgentReportRecord.received_at) >= since
            )
        ):
            body = report.body
            if body.get("model") != record.model:
                continue
            if body.get("version") == record.version and report.agent_id in reached:
                bucket = new
            elif body.get("version") == record.previous:
                bucket = old
            else:
                continue
            bucket["requests"] += float(body.get("requests") or 0)
            bucket["errors"] += float(body.get("errors") or 0)
            bucket["p95"] = max(bucket["p95"], float(body.get("latency_p95_s") or 0.0))
        return new, old

    def _advance(self, rollout_id: int, actor: str, why: str) -> str:
        with session_scope(self.engine) as session:
            record = self._record(session, rollout_id)
            if record.ring + 1 < ring_count(record):
                record.ring += 1
                record.ring_started_at = utcnow()
                note = f"{_ring_name(record)}: {why}"
                self._step(session, record, actor, "advance", note)
                session.add(record)
                return f"rollout {rollout_id} advanced to {note}"
            creator = record.created_by.split(":", 1)[-1]
            model, version = record.model, record.version
        approver = Principal(
            kind="user",
            id=0,
            name=creator,
            roles=frozenset({"approver"}),
            permissions=permissions_for({"approver"}),
        )
        try:
            promoted = self.registry.change_stage(model, version, "production", by=approver)
            refusal = (
                None
                if promoted.stage == "production"
                else f"v{version} has {len(promoted.approvals)} of "
                f"{promoted.approvals_required} approvals for production"
            )
        except (PermissionDeniedError, ConflictError) as exc:
            refusal = exc.message
        with session_scope(self.engine) as session:
            record = self._record(session, rollout_id)
            if refusal is None:
                record.state = "completed"
                note = f"every ring passed; v{version} is in production"
                self._step(session, record, actor, "complete", note)
            else:
                record.state = "rolled_back"
                note = f"every ring passed but promotion was refused: {refusal}"
                self._step(session, record, actor, "roll_back", note, outcome="refused")
            session.add(record)
        return f"rollout {rollout_id}: {note}"

    def _roll_back(self, rollout_id: int, failures: list[str]) -> None:
        with session_scope(self.engine) as session:
            record = self._record(session, rollout_id)
            record.state = "rolled_back"
            self._step(session, record, "system", "roll_back", "; ".join(failures))
            session.add(record)

    def _step(
        self,
        session: Session,
        record: RolloutRecord,
        actor: str,
        action: str,
        note: str,
        *,
        outcome: Outcome = "ok",
    ) -> None:
        record.steps = with_step(record.steps, actor, action, note, ring=record.ring + 1)
        self.audit.append(
            session,
            actor=actor,
            action=f"rollout.{action}",
            target=f"model:{record.model}/{record.version} in {record.zone}/{record.group}",
            outcome=outcome,
            detail={"ring": record.ring + 1, "note": note[:500]},
        )

    # -- reading -------------------------------------------------------------------------

    def _record(self, session: Session, rollout_id: int) -> RolloutRecord:
        record = session.get(RolloutRecord, rollout_id)
        if record is None:
            raise NotFoundError(f"no rollout {rollout_id}")
        return record

    def get(self, rollout_id: int) -> RolloutInfo:
        with Session(self.engine) as session:
            r = self._record(session, rollout_id)
            reached = self._reached(session, r) if r.state in ACTIVE else []
            standby = self._standby(session, r)[0] if r.state in ACTIVE else []
            return RolloutInfo(
                id=r.id or 0,
                model=r.model,
                version=r.version,
                previous=r.previous,
                zone=r.zone,
                group=r.group,
                strategy=r.strategy,
                rings=list(r.rings),
                first_agents=list(r.first_agents),
                ring=r.ring + 1,
                ring_count=ring_count(r),
                state=r.state,
                soak_s=r.soak_s,
                ring_started_at=iso_utc(r.ring_started_at),
                agents_reached=reached,
                agents_standby=standby,
                steps=list(r.steps),
                created_by=r.created_by,
            )

    def list(self) -> list[RolloutInfo]:
        with Session(self.engine) as session:
            ids = session.exec(select(RolloutRecord.id).order_by(col(RolloutRecord.id)))
            return [self.get(i or 0) for i in ids]


def _rings(spec: NewRollout) -> list[float]:
    """The shares a rollout keeps, checked for its strategy."""
    if spec.strategy != "canary":
        if spec.first_agents:
            raise InvalidInputError(f"first_agents: only for canary rollouts, not {spec.strategy}")
        return [1.0]
    return checked_rings(spec.rings)


def ring_count(record: RolloutRecord) -> int:
    """Blue-green: loading beside, then the switch; canary: a ring of named agents first."""
    if record.strategy == "blue-green":
        return 2
    return len(record.rings) + (1 if record.first_agents else 0)


def _ring_name(record: RolloutRecord) -> str:
    if record.strategy == "blue-green":
        return "loading beside the old version" if record.ring == 0 else "switched at once"
    return f"ring {record.ring + 1} of {ring_count(record)}"


def _soak_s(record: RolloutRecord) -> float:
    """Blue-green's loading phase has no soak: it waits only for every agent to load."""
    return 0.0 if record.strategy == "blue-green" and record.ring == 0 else record.soak_s
