"""The training queue: submission checks, leases, heartbeats, cancellation, retraining triggers.

Runs on SQLite and PostgreSQL (the claim uses ``FOR UPDATE SKIP LOCKED`` there).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from appliance.errors import ConflictError, InvalidInputError, NotFoundError
from appliance.security.keys import init_keypair
from appliance.wire.features import (
    EntityDefinition,
    FeatureDefinitions,
    FeatureSpec,
    FeatureViewDefinition,
    KeyColumn,
)
from appliance.wire.training import (
    ClaimRequest,
    FailRequest,
    GateSpec,
    GpuSample,
    HeartbeatRequest,
    JobSpec,
    ScheduleSpec,
    Telemetry,
)
from hub.artifacts import ArtifactStore
from hub.audit.service import AuditLog
from hub.auth.principal import Principal
from hub.auth.roles import permissions_for
from hub.features.service import FeatureStore
from hub.metrics import training_metrics
from hub.monitoring.service import DriftAlertOpened
from hub.registry.service import RegistryService
from hub.residency.gate import ResidencyGate
from hub.residency.policy import ResidencyPolicy
from hub.training.jobs import MAX_ATTEMPTS, TrainingJobs
from hub.training.schedules import RetrainingSchedules

ACTOR = "user:alice"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = ResidencyPolicy(
    zones=("ae-dxb", "ae-auh"),
    read={"ae-dxb": frozenset({"ae-dxb"}), "ae-auh": frozenset({"ae-auh"})},
)


def view(name: str, feature: str, dtype: str = "float64") -> FeatureViewDefinition:
    return FeatureViewDefinition(
        name=name,
        entity="thing",
        zone="ae-dxb",
        ttl_seconds=86400,
        features=[FeatureSpec(name=feature, dtype=dtype)],  # type: ignore[arg-type]
    )


@pytest.fixture
def jobs(engine: Engine, tmp_path: Path) -> TrainingJobs:
    key = init_keypair(tmp_path / "keys")
    audit = AuditLog(key)
    features = FeatureStore(
        engine,
        tmp_path / "features",
        audit=audit,
        gate=ResidencyGate(engine, POLICY, audit),
        home_zone="ae-dxb",
    )
    features.define(
        FeatureDefinitions(
            entities=[EntityDefinition(name="thing", join_keys=[KeyColumn(name="thing_id")])],
            feature_views=[view("scans", "x"), view("outcomes", "y", "int64")],
        ),
        actor=ACTOR,
    )
    ids = list(range(1, 21))
    features.ingest(
        "scans",
        pd.DataFrame({"thing_id": ids, "event_timestamp": [T0] * 20, "x": [i / 2 for i in ids]}),
        actor=ACTOR,
    )
    features.ingest(
        "outcomes",
        pd.DataFrame(
            {"thing_id": ids, "event_timestamp": [T0 + timedelta(hours=1)] * 20, "y": [0, 1] * 10}
        ),
        actor=ACTOR,
    )
    registry = RegistryService(
        engine, ArtifactStore(tmp_path / "artifacts"), key, audit=audit, policy=POLICY
    )
    return TrainingJobs(engine, features, registry, POLICY, audit, lease_s=60)


def spec(**changes: object) -> JobSpec:
    fields: dict[str, object] = {
        "model": "thing-model",
        "features": ["scans"],
        "label_view": "outcomes",
        "label": "y",
    }
    fields.update(changes)
    return JobSpec(**fields)  # type: ignore[arg-type]


def account(name: str = "gpu01", zone: str | None = None) -> Principal:
    """A worker as the hub sees it: its signed-in account, bound to a zone or the hub's."""
    return Principal(
        kind="user",
        id=0,
        name=name,
        roles=frozenset({"worker"}),
        permissions=permissions_for({"worker"}),
        zone=zone,
    )


def claim(jobs: TrainingJobs, worker: str = "gpu01", zone: str | None = None):  # type: ignore[no-untyped-def]
    return jobs.claim(ClaimRequest(), account(worker, zone))


def test_a_submitted_job_pins_view_versions_and_is_queued(jobs: TrainingJobs) -> None:
    job = jobs.submit(spec(), actor=ACTOR)
    assert (job.state, job.zone, job.submitted_by) == ("queued", "ae-dxb", ACTOR)
    assert job.spec["features"] == ["scans:1"] and job.spec["label_view"] == "outcomes:1"
    assert [j.id for j in jobs.list_jobs(state="queued")] == [job.id]


@pytest.mark.parametrize(
    ("changes", "error", "says"),
    [
        ({"label": "nope"}, InvalidInputError, "no feature 'nope'"),
        ({"features": ["outcomes"]}, InvalidInputError, "is the label view"),
        ({"features": []}, InvalidInputError, "at least one"),
        ({"features": ["missing"]}, NotFoundError, "missing"),
        ({"trainer": "not a trainer"}, InvalidInputError, "neither built in"),
        ({"params": {"epoch": 3}}, InvalidInputError, "epoch not known"),
        ({"gate": GateSpec(thresholds={"f1": 0.5})}, InvalidInputError, "unknown metric 'f1'"),
        ({"model": "Bad Name"}, InvalidInputError, "not a valid model name"),
        ({"zone": "eu-west"}, InvalidInputError, "eu-west"),
    ],
)
def test_a_bad_spec_is_refused_and_queues_nothing(
    jobs: TrainingJobs, changes: dict[str, object], error: type[Exception], says: str
) -> None:
    with pytest.raises(error, match=says):
        jobs.submit(spec(**changes), actor=ACTOR)
    assert jobs.list_jobs() == []


def test_a_custom_trainer_is_accepted_with_its_own_params(jobs: TrainingJobs) -> None:
    job = jobs.submit(spec(trainer="site_models.churn:train", params={"depth": 4}), actor=ACTOR)
    assert job.spec["trainer"] == "site_models.churn:train"


def test_one_worker_holds_a_job_and_others_get_the_next(jobs: TrainingJobs) -> None:
    first = jobs.submit(spec(), actor=ACTOR)
    second = jobs.submit(spec(), actor=ACTOR)
    a = claim(jobs, "gpu01")
    b = claim(jobs, "gpu02")
    assert a is not None and b is not None
    assert (a.id, a.worker, a.attempts, a.state) == (first.id, "gpu01", 1, "running")
    assert b.id == second.id
    assert claim(jobs, "gpu03") is None
    with pytest.raises(ConflictError, match="not leased to gpu02"):
        jobs.heartbeat(first.id, HeartbeatRequest(), account("gpu02"))


def test_workers_only_get_jobs_their_zone_may_read(jobs: TrainingJobs) -> None:
    jobs.submit(spec(), actor=ACTOR)  # data in ae-dxb
    assert claim(jobs, "auh-gpu", zone="ae-auh") is None  # ae-auh may not read ae-dxb
    assert claim(jobs, "dxb-gpu", zone="ae-dxb") is not None


def test_heartbeats_keep_progress_logs_and_gpu_readings(jobs: TrainingJobs) -> None:
    job = jobs.submit(spec(), actor=ACTOR)
    claim(jobs)
    gpu = GpuSample(
        index=0,
        name="NVIDIA H100",
        utilization_pct=97.0,
        memory_used_mib=4000.0,
        memory_total_mib=81559.0,
        temperature_c=61.0,
        power_w=412.5,
    )
    answer = jobs.heartbeat(
        job.id,
        HeartbeatRequest(
            progress=0.4,
            message="epoch 4/10",
            logs=["a", "b"],
            telemetry=Telemetry(gpus=[gpu]),
        ),
        account(),
    )
    assert answer.cancel is False
    seen = jobs.get(job.id)
    assert (seen.progress, seen.message) == (0.4, "epoch 4/10")
    assert seen.telemetry["gpus"][0]["utilization_pct"] == 97.0
    (worker,) = jobs.workers.list_all()
    assert (worker.name, worker.state, worker.job_id, worker.account) == (
        "gpu01",
        "busy",
        job.id,
        "user:gpu01",
    )
    assert worker.history[-1]["gpus"] == [[97.0, 4000.0, 61.0, 412.5]]
    with Session(jobs.engine) as session:
        metrics = {m.name: m.samples for m in training_metrics(session)}
    assert metrics["appliance_hub_training_jobs"][0].labels == {"state": "running"}
    (util,) = metrics["appliance_worker_gpu_utilization_percent"]
    assert util.labels == {"worker": "gpu01", "gpu": "0", "model": "NVIDIA H100"}
    assert util.value == 97.0
    lines = jobs.logs(job.id)
    assert [line.line for line in lines][-2:] == ["a", "b"]
    assert [line.line for line in jobs.logs(job.id, after=lines[-2].seq)] == ["b"]


def test_cancelling_a_queued_job_ends_it_and_a_running_one_tells_its_worker(
    jobs: TrainingJobs,
) -> None:
    queued = jobs.submit(spec(), actor=ACTOR)
    assert jobs.cancel(queued.id, actor=ACTOR).state == "cancelled"
    assert claim(jobs) is None  # a cancelled job is never handed out
    with pytest.raises(ConflictError, match="already ended"):
        jobs.cancel(queued.id, actor=ACTOR)

    running = jobs.submit(spec(), actor=ACTOR)
    claim(jobs)
    assert jobs.cancel(running.id, actor=ACTOR).cancel_requested
    assert jobs.heartbeat(running.id, HeartbeatRequest(), account()).cancel is True
    ended = jobs.fail(
        running.id,
        FailRequest(reason="stopped", cancelled=True),
        account(),
    )
    assert ended.state == "cancelled"


def test_a_lost_worker_s_job_is_requeued_and_fails_after_the_last_attempt(
    jobs: TrainingJobs,
) -> None:
    jobs.lease_s = 0.05
    job = jobs.submit(spec(), actor=ACTOR)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        held = claim(jobs, f"gpu{attempt}")
        assert held is not None and held.attempts == attempt
        time.sleep(0.1)  # no heartbeat: the lease runs out
        with pytest.raises(ConflictError):  # the late worker is told to stop
            jobs.heartbeat(job.id, HeartbeatRequest(), account(f"gpu{attempt}"))
        assert jobs.requeue_expired() == [job.id]
    final = jobs.get(job.id)
    assert final.state == "failed"
    assert f"{MAX_ATTEMPTS} attempts" in final.message
    assert claim(jobs) is None


def test_a_dataset_is_only_read_under_a_lease(jobs: TrainingJobs) -> None:
    job = jobs.submit(spec(), actor=ACTOR)
    with pytest.raises(ConflictError):
        jobs.dataset(job.id, account())
    claim(jobs)
    data = jobs.dataset(job.id, account())
    assert data.table.column_names == ["thing_id", "event_timestamp", "y", "scans__x"]
    assert data.table.num_rows == 20
    assert len(data.snapshots) == 2


def test_a_rejected_result_registers_nothing(jobs: TrainingJobs) -> None:
    job = jobs.submit(spec(), actor=ACTOR)
    claim(jobs)
    done = jobs.complete(
        job.id,
        account(),
        onnx_bytes=None,
        reference_npy=None,
        metrics={"accuracy": 0.5},
        lineage={"gate": {"summary": "rejected by the evaluation gate: accuracy 0.5"}},
        verdict="rejected",
    )
    assert (done.state, done.result_version) == ("rejected", None)
    assert done.message.startswith("rejected by the evaluation gate")


def test_a_passed_result_becomes_a_candidate_owned_by_the_submitter(
    jobs: TrainingJobs, tiny_onnx: bytes
) -> None:
    job = jobs.submit(spec(), actor=ACTOR)
    claim(jobs)
    done = jobs.complete(
        job.id,
        account(),
        onnx_bytes=tiny_onnx,
        reference_npy=None,
        metrics={"accuracy": 0.95},
        lineage={"trainer": "tabular-classification", "feature_views": ["scans:1"]},
        verdict="passed",
    )
    assert (done.state, done.result_version) == ("succeeded", 1)
    version = jobs.registry.get_version("thing-model", 1)
    assert (version.stage, version.created_by) == ("candidate", ACTOR)
    assert version.lineage["training_job"] == job.id
    assert version.zones == ["ae-dxb"]  # the zones of the data it read


def test_schedules_queue_on_drift_once_and_check_cron(jobs: TrainingJobs) -> None:
    schedules = RetrainingSchedules(jobs.engine, jobs, jobs.audit)
    with pytest.raises(InvalidInputError, match="cron"):
        schedules.create(ScheduleSpec(name="bad", job=spec(), cron="every day"), actor=ACTOR)
    with pytest.raises(InvalidInputError, match="needs 'cron'"):
        schedules.create(ScheduleSpec(name="never", job=spec()), actor=ACTOR)
    schedules.create(ScheduleSpec(name="weekly", job=spec(), cron="0 2 * * 1"), actor=ACTOR)
    schedules.create(ScheduleSpec(name="on-drift", job=spec(), on_drift=True), actor=ACTOR)
    with pytest.raises(ConflictError):
        schedules.create(ScheduleSpec(name="weekly", job=spec(), cron="0 3 * * 1"), actor=ACTOR)

    alert = DriftAlertOpened(agent_id=3, model="thing-model", version=1, windows=3)
    schedules.on_drift_alert(alert)
    schedules.on_drift_alert(alert)  # a second alert while the job is queued adds none
    (job,) = jobs.list_jobs()
    assert job.reason == "drift:thing-model/1 on agent 3"
    schedules.on_drift_alert(DriftAlertOpened(agent_id=3, model="other", version=1, windows=3))
    assert len(jobs.list_jobs()) == 1
    assert {s.name: s.last_job_id for s in schedules.list_all()} == {
        "on-drift": job.id,
        "weekly": None,
    }
    schedules.delete("weekly", actor=ACTOR)
    assert [s.name for s in schedules.list_all()] == ["on-drift"]
