"""Training jobs through a real hub and real worker processes on loopback.

The hub runs with a 3 s lease so that a killed worker's job comes back quickly.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from appliance.cli.demo.clinic import job_spec, load_clinic
from appliance.cli.demo.processes import ServiceProcess, wait_for, worker_process
from appliance.cli.demo.site import Site
from appliance.client.hub import HubClient
from appliance.errors import HubRejectedError
from appliance.wire.training import GateSpec, JobInfo, JobSpec
from tests.harness.site import _client, running_hub

pytestmark = [pytest.mark.integration, pytest.mark.slow]
LEASE_S = 3


@pytest.fixture(scope="module")
def hub(site: Site) -> Iterator[ServiceProcess]:
    with running_hub(site, env={"APPLIANCE_TRAINING_LEASE_S": str(LEASE_S)}) as proc:
        yield proc


@pytest.fixture(scope="module")
def clinic(engineer: HubClient) -> None:
    load_clinic(engineer, "ae-dxb")


@pytest.fixture(scope="module")
def worker_account(site: Site, hub: ServiceProcess) -> Iterator[HubClient]:
    yield from _client(site, hub, "gpu01")


@pytest.fixture
def start_worker(
    site: Site, hub: ServiceProcess, workdir: Path, admin: HubClient
) -> Iterator[Callable[[str], ServiceProcess]]:
    """A worker process per GPU server, each signed in with an account of its own (the hub
    knows a worker by its account)."""
    started: list[ServiceProcess] = []

    def start(name: str) -> ServiceProcess:
        if name not in site.passwords:
            site.passwords[name] = secrets.token_urlsafe(18)
            admin.create_user(name, site.passwords[name], ["worker"])
        session = site.session_file(hub.url, name, workdir / f"{name}.session.json")
        proc = worker_process(name, session, hub.url, workdir / "logs", heartbeat_s=0.5)
        proc.start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def _job_in(hub: HubClient, job_id: int, *states: str, timeout: float = 120.0) -> JobInfo:
    job = hub.wait_training(job_id, timeout=timeout)
    assert job.state in states, f"job {job_id} {job.state}: {job.message}"
    return job


def test_a_worker_trains_from_the_feature_store_and_registers_a_candidate(
    clinic: None,
    engineer: HubClient,
    approver: HubClient,
    start_worker: Callable[[str], ServiceProcess],
) -> None:
    job = engineer.submit_training(job_spec("clinic", epochs=40))
    assert job.state == "queued"
    assert job.spec["features"] == ["tumour_scans:1"]  # versions pinned at submission
    start_worker("gpu-a")
    done = _job_in(engineer, job.id, "succeeded", "failed", "rejected")
    assert done.state == "succeeded", done.message
    assert done.metrics["accuracy"] >= 0.9
    assert done.telemetry["note"] == "no GPU"  # this machine has no NVIDIA driver

    version = engineer.get_model("clinic").versions[-1]
    assert (version.version, version.stage) == (done.result_version, "candidate")
    assert version.metrics["accuracy"] == pytest.approx(done.metrics["accuracy"])
    assert "openvino" in version.runtimes
    lineage = version.lineage
    assert lineage["training_job"] == job.id
    assert lineage["feature_views"] == ["tumour_scans:1"]
    assert lineage["label_view"] == "diagnoses:1"
    assert len(lineage["snapshots"]) == 2  # one ingest each: scans and diagnoses
    assert lineage["worker"] == "gpu-a" and lineage["device"] == "cpu"
    assert lineage["classes"] == ["0", "1"]
    lines = [line.line for line in engineer.training_logs(job.id)]
    assert any("epoch 40/40" in line for line in lines)  # progress milestones reach the hub
    assert "passed the evaluation gate" in lines[-2]  # then 'registered clinic v1 …'
    assert lines[-1] == f"registered clinic v{version.version} as a candidate"

    # With v1 in production, a worse model is compared on the same rows and refused.
    engineer.change_stage("clinic", version.version, "staging")
    approver.change_stage("clinic", version.version, "production")
    strict = msgspec.structs.replace(
        job_spec("clinic", epochs=1, learning_rate=1e-5),
        gate=GateSpec(max_regression={"accuracy": 0.0}),
    )
    rejected = _job_in(engineer, engineer.submit_training(strict).id, "rejected", "succeeded")
    assert rejected.state == "rejected"
    assert f"production v{version.version}" in rejected.message
    assert "production_accuracy" in rejected.metrics
    assert engineer.get_model("clinic").versions[-1].version == version.version  # none added


def test_a_site_trainer_and_the_regression_trainer_run_through_the_same_path(
    clinic: None, engineer: HubClient, start_worker: Callable[[str], ServiceProcess]
) -> None:
    start_worker("gpu-e")
    own = msgspec.structs.replace(
        job_spec("clinic-own"), trainer="tests.integration.site_trainer:logistic", params={}
    )
    regression = msgspec.structs.replace(
        job_spec("clinic-risk", epochs=20),
        trainer="tabular-regression",
        gate=GateSpec(thresholds={"r2": 0.5}),
    )
    first, second = engineer.submit_training(own), engineer.submit_training(regression)
    done = _job_in(engineer, first.id, "succeeded", "failed", "rejected")
    assert done.state == "succeeded", done.message
    assert done.lineage["trainer"] == "tests.integration.site_trainer:logistic"
    assert done.metrics["accuracy"] >= 0.9
    risk = _job_in(engineer, second.id, "succeeded", "failed", "rejected")
    assert risk.state == "succeeded", risk.message
    assert risk.metrics["r2"] >= 0.5 and "rmse" in risk.metrics
    assert engineer.get_model("clinic-risk").versions[0].lineage["classes"] == []


def test_cancel_stops_a_running_job_mid_run(
    clinic: None, engineer: HubClient, start_worker: Callable[[str], ServiceProcess]
) -> None:
    start_worker("gpu-b")
    job = engineer.submit_training(job_spec("clinic-long", epochs=100_000))
    wait_for(
        "the job to train",
        lambda: (j := engineer.training_job(job.id)).state == "running" and j.progress > 0.05,
        timeout=60,
    )
    engineer.cancel_training(job.id)
    ended = _job_in(engineer, job.id, "cancelled", "failed", "succeeded", timeout=20)
    assert ended.state == "cancelled", ended.message
    assert ended.progress < 0.5  # it stopped mid-run, far from the end
    with pytest.raises(HubRejectedError) as again:
        engineer.cancel_training(job.id)
    assert again.value.status_code == 409


def test_a_dead_workers_job_goes_back_to_the_queue(
    clinic: None, engineer: HubClient, start_worker: Callable[[str], ServiceProcess]
) -> None:
    first = start_worker("gpu-c")
    job = engineer.submit_training(job_spec("clinic-lease", epochs=100_000))
    wait_for(
        "gpu-c to train",
        lambda: (j := engineer.training_job(job.id)).worker == "gpu-c" and j.progress > 0.05,
        timeout=60,
    )
    first.kill()  # kill -9: no goodbye, no more heartbeats
    requeued = wait_for(
        "the lease to expire",
        lambda: ((j := engineer.training_job(job.id)).state == "queued" and j) or None,
        timeout=LEASE_S * 4,
    )
    assert "stopped heartbeating" in requeued.message
    start_worker("gpu-d")
    taken = wait_for(
        "gpu-d to take the job",
        lambda: ((j := engineer.training_job(job.id)).worker == "gpu-d" and j) or None,
        timeout=30,
    )
    assert taken.attempts == 2
    engineer.cancel_training(job.id)
    assert _job_in(engineer, job.id, "cancelled", "failed", timeout=20).state == "cancelled"


def _times_said(proc: ServiceProcess, text: str) -> int:
    return proc.log_path.read_text().count(text) if proc.log_path.exists() else 0


def test_a_worker_started_before_its_hub_waits_for_it(
    hub: ServiceProcess,
    clinic: None,
    engineer: HubClient,
    start_worker: Callable[[str], ServiceProcess],
) -> None:
    """Started with its hub (an upgrade's one 'systemctl start', a GPU server that boots
    first after a power cut), a worker waits for the hub instead of exiting: on a Debian 12
    host it exited at once, its unit failed to start, and the hub's upgrade rolled back."""
    worker = start_worker("gpu-late")  # its account and session, made while the hub runs
    worker.stop()
    hub.stop()
    try:
        waiting = "hub unreachable at start, will retry"
        worker.start()
        wait_for("the worker to wait", lambda: _times_said(worker, waiting))
        worker.stop()  # SIGTERM while it waits: it ends, and cleanly
        assert worker.process is not None and worker.process.returncode == 0
        before = _times_said(worker, waiting)
        worker.start()
        wait_for("the worker to wait again", lambda: _times_said(worker, waiting) > before)
        assert worker.process.poll() is None
    finally:
        hub.start()  # same data directory, same port
        hub.wait_healthy()
    job = engineer.submit_training(job_spec("clinic-late", epochs=5))
    done = _job_in(engineer, job.id, "succeeded", "failed", "rejected")
    assert (done.state, done.worker) == ("succeeded", "gpu-late"), done.message
    assert worker.process is not None and worker.process.poll() is None


def test_people_and_workers_keep_to_their_side(
    clinic: None, engineer: HubClient, worker_account: HubClient, approver: HubClient
) -> None:
    with pytest.raises(HubRejectedError) as denied:  # approvers read jobs, never submit them
        approver.submit_training(job_spec("clinic"))
    assert denied.value.status_code == 403
    with pytest.raises(HubRejectedError) as no_models:  # a worker account reads no models
        worker_account.list_models()
    assert no_models.value.status_code == 403
    job = engineer.submit_training(job_spec("clinic-queue"))
    with pytest.raises(HubRejectedError) as not_leased:  # a dataset only under a lease
        worker_account.training_dataset(job.id)
    assert not_leased.value.status_code == 409
    engineer.cancel_training(job.id)
    with pytest.raises(HubRejectedError) as bad_view:
        engineer.submit_training(
            JobSpec(model="clinic", features=["nowhere"], label_view="diagnoses", label="benign")
        )
    assert bad_view.value.status_code == 404
