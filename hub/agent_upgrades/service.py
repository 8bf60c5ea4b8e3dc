"""Agent upgrades: one agent group taken to an agent release the hub holds, ring by ring.

Ring ``k`` covers the first ``ceil(rings[k] * n)`` of the group's agents by id
(:mod:`hub.fleet.rings`). The agents a running upgrade has reached find the release in
their assignments (:meth:`AgentUpgrades.target_for`), fetch it from the hub, and upgrade
their host with ``appliance upgrade``, which checks the archive against the host's own
pinned release key and rolls the host back by itself when the new release is not
healthy. The hub learns the outcome from heartbeats: the release an agent runs
(``software_version``), or that its upgrade failed (``upgrade_failed``).

The gates, judged by the hub's scheduler (:meth:`AgentUpgrades.evaluate`):

* a ring moves on once every agent of it says it runs the release and its host's upgrader
  is done with it (an agent says ``upgrading`` while the upgrader health-checks the new
  release, which already heartbeats), none is failing, and it has run for ``soak_s``
  since the ring began; the last ring completes the upgrade,
  after which every agent of the group is asked to run the release (agents enrolled
  later too);
* an agent that says its upgrade failed halts the upgrade at once: no further ring, and
  that agent is asked for nothing more (it went back by itself); agents already
  upgraded keep the release;
* a ring agent still not on the release ``install_grace_s`` past the soak
  (``APPLIANCE_AGENT_INSTALL_GRACE_S``, default 900) halts it too.

Starting and aborting take ``agents:upgrade`` (admins) and are audited, as are halts.
Only releases the hub holds can be named, and the hub holds only archives the site's
release key signed (:mod:`hub.agent_releases`), so no upgrade runs software the site did
not release. One upgrade runs per group at a time.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from appliance.clock import as_utc, iso_utc, utcnow
from appliance.errors import ConflictError, NotFoundError, UnprocessableInputError
from appliance.wire.fleet import (
    AgentUpgradeInfo,
    Heartbeat,
    NewAgentUpgrade,
    SoftwareTarget,
)
from hub.agent_releases.service import AgentReleases
from hub.agent_upgrades.records import AgentUpgradeRecord
from hub.audit.schemas import Outcome
from hub.audit.service import AuditLog
from hub.auth.principal import Principal
from hub.db import session_scope
from hub.events import Changes
from hub.fleet.records import AgentRecord
from hub.fleet.rings import checked_rings, first_share, group_members, with_step
from hub.residency.policy import ResidencyPolicy

HOLDING = ("running", "completed", "halted", "aborted")
"""States in which an upgrade still says what its reached agents run."""


class AgentUpgrades:
    def __init__(
        self,
        engine: Engine,
        releases: AgentReleases,
        audit: AuditLog,
        policy: ResidencyPolicy,
        *,
        max_soak_s: float,
        install_grace_s: float,
    ) -> None:
        """``max_soak_s`` and ``install_grace_s``: the hub's release settings
        (:class:`appliance.settings.ReleaseSettings`), where their defaults live."""
        self.engine = engine
        self.releases = releases
        self.audit = audit
        self.policy = policy
        self.max_soak_s = max_soak_s
        self.install_grace_s = install_grace_s
        """How long past the soak a ring agent may take to come back on the release."""
        self.changes = Changes()

    # -- operator actions ----------------------------------------------------------------

    def start(self, spec: NewAgentUpgrade, by: Principal) -> AgentUpgradeInfo:
        rings = checked_rings(spec.rings)
        if not 0 <= spec.soak_s <= self.max_soak_s:
            raise UnprocessableInputError(
                f"soak_s: {spec.soak_s} is outside 0 to {self.max_soak_s:.0f} seconds"
            )
        self.policy.check_zones([spec.zone], "zone")
        release = self.releases.get(spec.version)
        with session_scope(self.engine) as session:
            busy = session.exec(
                select(AgentUpgradeRecord).where(
                    AgentUpgradeRecord.zone == spec.zone,
                    AgentUpgradeRecord.group == spec.group,
                    AgentUpgradeRecord.state == "running",
                )
            ).first()
            if busy is not None:
                raise ConflictError(
                    f"agent upgrade {busy.id} (to {busy.version}) is running in "
                    f"{spec.zone}/{spec.group}",
                    hint="abort it or let it finish first",
                )
            record = AgentUpgradeRecord(
                version=release.version,
                zone=spec.zone,
                group=spec.group,
                rings=rings,
                soak_s=spec.soak_s,
                created_by=by.actor,
            )
            self._step(record, by.actor, "start", _ring_name(record))
            session.add(record)
            session.flush()
            upgrade_id = record.id or 0
            self._audit(session, record, by.actor, "start", {"rings": rings})
        self.changes.announce(by.actor, f"agent upgrade {upgrade_id} started")
        return self.get(upgrade_id)

    def abort(self, upgrade_id: int, by: Principal) -> AgentUpgradeInfo:
        """Ask no further agent to upgrade; those upgraded keep the release."""
        with session_scope(self.engine) as session:
            record = self._record(session, upgrade_id)
            if record.state != "running":
                raise ConflictError(f"agent upgrade {upgrade_id} is {record.state}; cannot abort")
            record.state = "aborted"
            self._step(record, by.actor, "abort", "by an operator")
            session.add(record)
            self._audit(session, record, by.actor, "abort", {})
        self.changes.announce(by.actor, f"agent upgrade {upgrade_id} aborted")
        return self.get(upgrade_id)

    # -- what agents are asked to run ----------------------------------------------------

    def target_for(self, agent_id: int, zone: str, group: str) -> SoftwareTarget | None:
        """The release the newest upgrade of the agent's group asks it to run, if any."""
        with Session(self.engine) as session:
            record = session.exec(
                select(AgentUpgradeRecord)
                .where(
                    AgentUpgradeRecord.zone == zone,
                    AgentUpgradeRecord.group == group,
                    col(AgentUpgradeRecord.state).in_(HOLDING),
                )
                .order_by(col(AgentUpgradeRecord.id).desc())
            ).first()
            if record is None or agent_id in _failed_ids(record):
                return None
            if record.state != "completed" and agent_id not in self._reached(session, record):
                return None
        release = self.releases.get(record.version)
        return SoftwareTarget(
            version=release.version,
            archive_sha256=release.archive_sha256,
            sums_sha256=release.sums_sha256,
            upgrade_id=record.id or 0,
        )

    def on_heartbeat(self, agent_id: int, beat: Heartbeat) -> None:
        """Keep what the agent says of its host's upgrade, for the running upgrades of its
        group: still installing the release, or failed (which halts that upgrade)."""
        failure = beat.upgrade_failed
        halted = []
        with session_scope(self.engine) as session:
            agent = session.get(AgentRecord, agent_id)
            if agent is None:
                return
            for record in session.exec(
                select(AgentUpgradeRecord).where(
                    AgentUpgradeRecord.zone == agent.zone,
                    AgentUpgradeRecord.group == agent.group,
                    AgentUpgradeRecord.state == "running",
                )
            ):
                now = beat.upgrading == record.version
                if now != (agent_id in record.installing):
                    others = [i for i in record.installing if i != agent_id]
                    record.installing = [*others, agent_id] if now else others
                    session.add(record)
                if (
                    failure is not None
                    and failure.version == record.version
                    and agent_id not in _failed_ids(record)
                ):
                    reason = failure.reason[:500]
                    record.failed = [
                        *record.failed,
                        {"agent_id": agent_id, "name": agent.name, "reason": reason},
                    ]
                    self._halt(session, record, f"{agent.name}: its upgrade failed ({reason})")
                    halted.append(record.id)
        for upgrade_id in halted:
            self.changes.announce("system", f"agent upgrade {upgrade_id} halted")

    # -- the gates -----------------------------------------------------------------------

    def evaluate(self) -> list[str]:
        """The scheduler's job: move on every running upgrade whose ring is done, halt
        those whose ring agents did not come back on the release in time."""
        happened = []
        with session_scope(self.engine) as session:
            running = session.exec(
                select(AgentUpgradeRecord).where(AgentUpgradeRecord.state == "running")
            ).all()
            for record in running:
                said = self._judge(session, record)
                if said:
                    happened.append(f"agent upgrade {record.id}: {said}")
        for line in happened:
            self.changes.announce("system", line)
        return happened

    def _judge(self, session: Session, record: AgentUpgradeRecord) -> str | None:
        reached = self._reached(session, record)
        agents = {
            a.id: a
            for a in session.exec(select(AgentRecord).where(col(AgentRecord.id).in_(reached)))
        }
        behind = [a for a in agents.values() if not _upgraded(a, record)]
        failing = [a for a in agents.values() if a.health == "failing"]
        ran_for = (utcnow() - as_utc(record.ring_started_at)).total_seconds()
        if failing:
            names = ", ".join(a.name for a in failing)
            return self._halt(session, record, f"{names} failing on {record.version}")
        if behind:
            if ran_for < record.soak_s + self.install_grace_s:
                return None
            names = ", ".join(f"{a.name} ({a.software_version})" for a in behind)
            return self._halt(
                session,
                record,
                f"not on {record.version} {record.soak_s + self.install_grace_s:.0f} s after "
                f"the ring began: {names}",
            )
        if ran_for < record.soak_s:
            return None
        if record.ring + 1 < len(record.rings):
            record.ring += 1
            record.ring_started_at = utcnow()
            self._step(record, "system", "next ring", _ring_name(record))
            session.add(record)
            return f"now {_ring_name(record)}"
        record.state = "completed"
        self._step(record, "system", "complete", f"every agent on {record.version}")
        session.add(record)
        self._audit(session, record, "system", "complete", {})
        return "completed"

    def _halt(self, session: Session, record: AgentUpgradeRecord, why: str) -> str:
        record.state = "halted"
        self._step(record, "system", "halt", why, outcome="error")
        session.add(record)
        self._audit(session, record, "system", "halt", {"why": why}, outcome="error")
        return f"halted: {why}"

    # -- reading -------------------------------------------------------------------------

    def get(self, upgrade_id: int) -> AgentUpgradeInfo:
        with Session(self.engine) as session:
            return self._info(session, self._record(session, upgrade_id))

    def recent(self) -> list[AgentUpgradeInfo]:
        """The last 200, newest first."""
        with Session(self.engine) as session:
            rows = session.exec(
                select(AgentUpgradeRecord).order_by(col(AgentUpgradeRecord.id).desc()).limit(200)
            ).all()
            return [self._info(session, r) for r in rows]

    def _info(self, session: Session, record: AgentUpgradeRecord) -> AgentUpgradeInfo:
        reached = self._reached(session, record)
        upgraded = [
            a.id or 0
            for a in session.exec(select(AgentRecord).where(col(AgentRecord.id).in_(reached)))
            if _upgraded(a, record)
        ]
        return AgentUpgradeInfo(
            id=record.id or 0,
            version=record.version,
            zone=record.zone,
            group=record.group,
            rings=list(record.rings),
            ring=record.ring + 1,
            state=record.state,
            soak_s=record.soak_s,
            ring_started_at=iso_utc(as_utc(record.ring_started_at)),
            agents_reached=reached,
            agents_upgraded=sorted(upgraded),
            failed=list(record.failed),
            steps=list(record.steps),
            created_by=record.created_by,
            created_at=iso_utc(as_utc(record.created_at)),
        )

    def _reached(self, session: Session, record: AgentUpgradeRecord) -> list[int]:
        members = group_members(session, record.zone, record.group)
        failed = _failed_ids(record)
        share = 1.0 if record.state == "completed" else record.rings[record.ring]
        return [i for i, _ in first_share(members, share) if i not in failed]

    def _record(self, session: Session, upgrade_id: int) -> AgentUpgradeRecord:
        record = session.get(AgentUpgradeRecord, upgrade_id)
        if record is None:
            raise NotFoundError(f"no agent upgrade {upgrade_id}")
        return record

    def _step(
        self,
        record: AgentUpgradeRecord,
        actor: str,
        action: str,
        note: str,
        *,
        outcome: Outcome = "ok",
    ) -> None:
        record.steps = with_step(record.steps, actor, action, note, outcome=outcome)

    def _audit(
        self,
        session: Session,
        record: AgentUpgradeRecord,
        actor: str,
        action: str,
        detail: dict[str, Any],
        *,
        outcome: Outcome = "ok",
    ) -> None:
        self.audit.append(
            session,
            actor=actor,
            action=f"agent_upgrade.{action}",
            target=f"agent-upgrade:{record.id}",
            outcome=outcome,
            detail={"version": record.version, "zone": record.zone, "group": record.group} | detail,
        )


def _upgraded(agent: AgentRecord, record: AgentUpgradeRecord) -> bool:
    """It runs the release, and its host's upgrader has judged it healthy (an agent says
    ``upgrading`` while that check runs)."""
    return agent.software_version == record.version and agent.id not in record.installing


def _failed_ids(record: AgentUpgradeRecord) -> set[int]:
    return {int(f["agent_id"]) for f in record.failed}


def _ring_name(record: AgentUpgradeRecord) -> str:
    return f"ring {record.ring + 1} of {len(record.rings)}"
