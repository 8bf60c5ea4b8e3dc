"""An A/B experiment has a longest run: past it, its variants leave agents and it stops."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from appliance.clock import utcnow
from appliance.security.keys import init_keypair
from hub.artifacts import ArtifactStore
from hub.audit.service import AuditLog
from hub.db import session_scope
from hub.experiments.records import ExperimentRecord
from hub.experiments.service import ExperimentService
from hub.registry.service import RegistryService
from hub.residency.policy import ResidencyPolicy


def _experiment(name: str, age_days: float) -> ExperimentRecord:
    return ExperimentRecord(
        name=name,
        model="m",
        variants=[
            {"name": "a", "version": 1, "weight": 1},
            {"name": "b", "version": 2, "weight": 1},
        ],
        zone="ae-dxb",
        group="default",
        metric="rate",
        min_samples=100,
        salt="s",
        created_by="user:alice",
        created_at=utcnow() - timedelta(days=age_days),
    )


def test_an_experiment_past_its_longest_run_leaves_agents_and_stops(engine, tmp_path):
    key = init_keypair(tmp_path / "keys")
    audit = AuditLog(key)
    registry = RegistryService(
        engine,
        ArtifactStore(tmp_path / "artifacts"),
        key,
        audit=audit,
        policy=ResidencyPolicy.single_zone("ae-dxb"),
    )
    experiments = ExperimentService(engine, registry, audit, max_days=30)
    with session_scope(engine) as session:
        session.add(_experiment("fresh", 1))
        session.add(_experiment("forgotten", 31))
    assert set(experiments.running_for("ae-dxb", "default")) == {"fresh"}  # at once
    heard: list[str] = []
    experiments.changes.subscribe(lambda _actor, reason: heard.append(reason))
    assert experiments.expire() == ["forgotten"]
    assert experiments.get("forgotten").status == "stopped"
    assert experiments.get("fresh").status == "running"
    assert experiments.expire() == []
    assert heard == ["experiment forgotten ran its longest and stopped"]
    with Session(engine) as session:
        (entry,) = audit.list(session, action="experiment.stop")
    assert entry.actor == "system" and "30 days" in entry.detail["reason"]
