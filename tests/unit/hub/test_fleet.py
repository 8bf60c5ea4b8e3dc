"""How the hub shows an agent: silence makes it stale, whatever it last said."""

from __future__ import annotations

from datetime import timedelta

from appliance.clock import utcnow
from hub.fleet.service import agent_info
from hub.records import AgentRecord


def _agent(seen_ago_s: float, *, revoked: bool = False) -> AgentRecord:
    return AgentRecord(
        id=1,
        name="edge-1",
        zone="ae-dxb",
        runtime="onnxruntime",
        health="ok",
        detail=None,
        last_seen_at=utcnow() - timedelta(seconds=seen_ago_s),
        revoked_at=utcnow() if revoked else None,
    )


def test_an_agent_silent_too_long_is_stale_not_healthy():
    """Issue 14, finding 4: the hub still showed a wedged agent healthy."""
    assert agent_info(_agent(30), stale_after_s=900).health == "ok"
    stale = agent_info(_agent(1200), stale_after_s=900)
    assert stale.health == "stale" and "no heartbeat for 1200 s" in (stale.detail or "")
    assert agent_info(_agent(1200)).health == "ok"  # no threshold: as last said
    assert agent_info(_agent(1200, revoked=True), stale_after_s=900).health == "ok"
