"""The hub's side of reports: stored once per key, drift alerts open and close, audited."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from appliance.security.keys import init_keypair
from appliance.wire.fleet import AgentReport
from hub.audit.service import AuditLog
from hub.fleet.records import ReportRefusalRecord
from hub.monitoring.service import DriftAlertOpened, MonitoringService


@pytest.fixture
def monitoring(engine, tmp_path) -> MonitoringService:
    return MonitoringService(engine, AuditLog(init_keypair(tmp_path / "keys")), alert_windows=3)


def drift(key: str, drifted: bool, version: int = 1) -> AgentReport:
    body = {
        "model": "bc",
        "version": version,
        "method": "ks",
        "drifted": drifted,
        "p_values": [0.0001 if drifted else 0.4, 0.5],
        "distances": [0.3, 0.01],
        "threshold": 0.025,
        "window_size": 1000,
        "started_at": 1.7e9,
        "ended_at": 1.7e9 + 60,
    }
    return AgentReport(key=key, kind="drift", body=body)


def test_a_resent_batch_is_acknowledged_and_stored_once(monitoring):
    batch = [drift(f"d{i}", False) for i in range(4)]
    assert monitoring.ingest(7, batch).accepted == ["d0", "d1", "d2", "d3"]
    assert monitoring.ingest(7, batch).accepted == ["d0", "d1", "d2", "d3"]  # a lost answer
    assert monitoring.count("drift") == 4
    assert len(monitoring.drift_history(agent_id=7)) == 4
    assert monitoring.ingest(8, batch[:1]).accepted == ["d0"]  # keys are per agent
    assert monitoring.count() == 5


def test_an_alert_opens_after_three_drifted_windows_and_closes_with_a_clean_one(monitoring):
    heard: list[DriftAlertOpened] = []
    monitoring.on_alert(heard.append)
    monitoring.ingest(1, [drift("a", True), drift("b", True)])
    assert monitoring.alerts_list() == []
    monitoring.ingest(1, [drift("c", True)])
    (alert,) = monitoring.alerts_list(open_only=True)
    assert (alert.model, alert.version, alert.windows) == ("bc", 1, 3)
    assert heard == [DriftAlertOpened(agent_id=1, model="bc", version=1, windows=3)]
    monitoring.ingest(1, [drift("d", True)])  # still drifting: no second alert
    assert len(monitoring.alerts_list()) == 1
    monitoring.ingest(1, [drift("e", False)])
    assert monitoring.alerts_list(open_only=True) == []
    assert monitoring.alerts_list()[0].closed_at is not None


def test_history_pages_and_filters(monitoring):
    monitoring.ingest(1, [drift(f"x{i}", i % 2 == 0) for i in range(5)])
    first = monitoring.drift_history(limit=2)
    rest = monitoring.drift_history(after_id=first[-1].id)
    assert len(first) == 2 and len(rest) == 3
    assert [r.drifted for r in first + rest] == [True, False, True, False, True]
    assert first[0].min_p_value == pytest.approx(0.0001)
    assert monitoring.drift_history(model="other") == []


def test_bad_reports_are_refused_one_by_one_and_the_rest_is_held(monitoring):
    """Issue 14, finding 4: one poisoned report used to cost the whole batch, for ever."""
    nan_window = drift("nan", True)
    nan_window.body["p_values"] = [None, 0.5]  # a NaN p-value, as JSON carries it
    batch = [
        drift("good-1", False),
        AgentReport(key="bad", kind="drift", body={"model": "bc"}),
        nan_window,
        AgentReport(
            key="huge",
            kind="ab",
            body={"experiment": "e", "variant": "a", "count": 1, "total": 1e308},
        ),
        AgentReport(
            key="negative",
            kind="serving",
            body={"model": "bc", "version": 1, "requests": -5},
        ),
        AgentReport(
            key="ab-ok",
            kind="ab",
            body={"experiment": "e", "variant": "a", "count": 3, "total": 2.0, "total_sq": 2.0},
        ),
        drift("good-2", False),
    ]
    answer = monitoring.ingest(1, batch, actor="agent:edge-1")
    assert answer.accepted == ["good-1", "ab-ok", "good-2"]
    assert [r.key for r in answer.refused] == ["bad", "nan", "huge", "negative"]
    assert "p_values" in answer.refused[1].reason and "total" in answer.refused[2].reason
    assert monitoring.count() == 3
    with Session(monitoring.engine) as session:
        (entry,) = monitoring.audit.list(session, action="reports.refused")
    assert (entry.actor, entry.detail["count"]) == ("agent:edge-1", 4)
    monitoring.ingest(1, [AgentReport(key="bad-2", kind="drift", body={})], actor="agent:edge-1")
    with Session(monitoring.engine) as session:
        refusal = session.get(ReportRefusalRecord, 1)
        assert refusal is not None and refusal.count == 5  # the hub shows edge-1 degraded
        assert session.get(ReportRefusalRecord, 2) is None
