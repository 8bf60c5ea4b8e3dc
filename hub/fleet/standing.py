"""How the hub judges an agent's health itself, not only from what the agent says.

An agent reports its own health in each heartbeat, but a wedged, old or tampered agent
may keep saying ``ok``. The hub overrides that with what it sees:

- ``stale``: no heartbeat for longer than ``stale_after_s`` (its reports have stopped too);
- ``degraded``: the hub refused some of its reports within the last ``refusal_window_s``
  (those readings are lost to drift, serving and A/B figures until someone looks).

A revoked agent is shown as it last said: it is out of the fleet either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from appliance.clock import as_utc, utcnow
from hub.fleet.records import AgentRecord, ReportRefusalRecord

REASON_CHARS = 500


@dataclass(frozen=True)
class AgentStanding:
    stale_after_s: float | None = None
    """Silence longer than this shows the agent ``stale``; ``None``: never."""
    refusal_window_s: float = 3600.0
    """Refused reports show the agent ``degraded`` for this long after the last one."""

    def judge(
        self,
        record: AgentRecord,
        refusal: ReportRefusalRecord | None = None,
        *,
        now: datetime | None = None,
    ) -> tuple[str, str | None]:
        """The health and detail to show for ``record``."""
        health, detail = record.health, record.detail
        if record.revoked_at is not None:
            return health, detail
        now = now or utcnow()
        if self.stale_after_s is not None and record.last_seen_at:
            silent = (now - as_utc(record.last_seen_at)).total_seconds()
            if silent > self.stale_after_s:
                return "stale", f"no heartbeat for {silent:.0f} s; last said: {detail}"
        if refusal is not None and self._within_window(refusal, now):
            said = f"; agent says {health}" + (f": {detail}" if detail else "")
            return "degraded", (
                f"the hub refused {refusal.count} of its reports since "
                f"{as_utc(refusal.first_at):%Y-%m-%d %H:%M:%S}Z "
                f"(last: {refusal.last_reason}){said}"
            )
        return health, detail

    def note_refused(self, session: Session, agent_id: int, count: int, reason: str) -> None:
        """Count ``count`` reports refused from ``agent_id`` now; a window that has lapsed
        starts afresh."""
        now = utcnow()
        refusal = session.get(ReportRefusalRecord, agent_id)
        if refusal is None or not self._within_window(refusal, now):
            refusal = refusal or ReportRefusalRecord(agent_id=agent_id)
            refusal.count, refusal.first_at = 0, now
        refusal.count += count
        refusal.last_at = now
        refusal.last_reason = reason[:REASON_CHARS]
        session.add(refusal)

    def _within_window(self, refusal: ReportRefusalRecord, now: datetime) -> bool:
        return (now - as_utc(refusal.last_at)).total_seconds() <= self.refusal_window_s
