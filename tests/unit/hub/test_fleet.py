"""How the hub shows an agent: silence makes it stale and refused reports degraded,
whatever it last said."""

from __future__ import annotations

from datetime import timedelta

from appliance.clock import utcnow
from hub.fleet.records import AgentRecord, ReportRefusalRecord
from hub.fleet.service import agent_info
from hub.fleet.standing import AgentStanding

STANDING = AgentStanding(stale_after_s=900, refusal_window_s=3600)


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
    assert agent_info(_agent(30), standing=STANDING).health == "ok"
    stale = agent_info(_agent(1200), standing=STANDING)
    assert stale.health == "stale" and "no heartbeat for 1200 s" in (stale.detail or "")
    assert agent_info(_agent(1200)).health == "ok"  # no judgement: as last said
    assert agent_info(_agent(1200, revoked=True), standing=STANDING).health == "ok"


def _refused(ago_s: float, count: int = 3) -> ReportRefusalRecord:
    at = utcnow() - timedelta(seconds=ago_s)
    return ReportRefusalRecord(
        agent_id=1, count=count, first_at=at, last_at=at, last_reason="p_values: not finite"
    )


def test_an_agent_whose_reports_the_hub_refused_is_degraded_though_it_says_ok():
    """Issue 14, finding 4: the hub itself marks an agent degraded when it refuses its
    reports, so an agent that keeps saying ``ok`` cannot hide the loss."""
    shown = agent_info(_agent(30), standing=STANDING, refusal=_refused(60))
    assert shown.health == "degraded"
    assert "refused 3 of its reports" in (shown.detail or "")
    assert "p_values: not finite" in (shown.detail or "")
    assert "agent says ok" in (shown.detail or "")
    # The window lapses: as the agent says again.
    assert agent_info(_agent(30), standing=STANDING, refusal=_refused(4000)).health == "ok"
    # Silence outranks refusals: the newest news is that nothing arrives at all.
    assert agent_info(_agent(1200), standing=STANDING, refusal=_refused(60)).health == "stale"
