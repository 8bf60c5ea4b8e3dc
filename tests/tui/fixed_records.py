"""Fixed training jobs, GPU workers, rollouts, experiments and drift for the hub double.

Shaped as the real hub answers (``JobInfo``/``WorkerInfo`` structs; rollouts,
experiments and drift as the JSON dicts ``HubClient`` returns), with fixed
timestamps and no randomness, so snapshots and captures are the same every run.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from appliance.wire.training import GpuSample, JobInfo, LogLine, Telemetry, WorkerInfo

NOW = 1741082400.0
"""2025-03-04T10:00:00Z: the latest GPU reading and drift window end here."""


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


# -- training jobs -------------------------------------------------------------------------


def _job(id: int, model: str, state: Any, **extra: Any) -> JobInfo:
    fields: dict[str, Any] = {
        "zone": "ae-dxb",
        "spec": {"model": model, "features": ["customer_stats:2"], "label_view": "churn_labels"},
        "reason": "manual",
        "submitted_by": "user:alice",
        "created_at": _iso(NOW - 600 * (15 - id)),
        "started_at": None,
        "finished_at": None,
        "worker": None,
        "attempts": 0,
        "progress": 0.0,
        "message": "queued",
        "cancel_requested": False,
        "telemetry": {},
        "metrics": {},
        "result_version": None,
        "lineage": {},
    }
    fields.update(extra)
    return JobInfo(id=id, model=model, state=state, **fields)


JOBS = [
    _job(
        14,
        "churn",
        "running",
        reason="drift:churn/3 on agent 2",
        worker="dxb-gpu-01",
        attempts=1,
        progress=0.625,
        message="epoch 25/40: loss 0.312, accuracy 0.918",
    ),
    _job(13, "fraud", "queued", reason="schedule:nightly-fraud"),
    _job(
        12,
        "churn",
        "succeeded",
        worker="dxb-gpu-01",
        attempts=1,
        progress=1.0,
        message="registered churn v4 as a candidate",
        metrics={"accuracy": 0.927, "log_loss": 0.214},
        result_version=4,
    ),
    _job(
        11,
        "churn",
        "rejected",
        worker="dxb-gpu-02",
        attempts=1,
        progress=1.0,
        message="accuracy 0.874 is under the threshold 0.9",
        metrics={"accuracy": 0.874, "log_loss": 0.301},
    ),
    _job(
        10,
        "fraud",
        "failed",
        worker="dxb-gpu-02",
        attempts=2,
        progress=0.1,
        message="CUDA out of memory on gpu0 (tried to allocate 2.1 GiB)",
    ),
    _job(9, "churn", "cancelled", message="cancelled by user:alice"),
]

LOGS = {
    14: [
        LogLine(seq=1, at=_iso(NOW - 300), line="claimed by dxb-gpu-01 (attempt 1)"),
        LogLine(seq=2, at=_iso(NOW - 298), line="training set: 8,412 rows, 31 features"),
        *(
            LogLine(
                seq=2 + epoch,
                at=_iso(NOW - 296 + 11 * epoch),
                line=f"epoch {epoch}/40: loss {0.69 - 0.0151 * epoch:.3f}, "
                f"accuracy {0.80 + 0.0047 * epoch:.3f}",
            )
            for epoch in range(1, 26)
        ),
    ],
    12: [
        LogLine(seq=1, at="2025-03-04T08:41:00.000000Z", line="claimed by dxb-gpu-01 (attempt 1)"),
        LogLine(seq=2, at="2025-03-04T08:49:30.000000Z", line="gate: accuracy 0.927 >= 0.9"),
        LogLine(seq=3, at="2025-03-04T08:49:31.000000Z", line="registered churn v4"),
    ],
}


# -- GPU workers ---------------------------------------------------------------------------


def _gpu(index: int, name: str, util: float, memory: float, total: float, temp: float) -> GpuSample:
    return GpuSample(
        index=index,
        name=name,
        utilization_pct=util,
        memory_used_mib=memory,
        memory_total_mib=total,
        temperature_c=temp,
        power_w=round(60 + util * 2.4, 1),
    )


def _busy_history(readings: int) -> list[dict[str, Any]]:
    """Idle for the first third, then training: utilisation up, the GPUs warming."""
    history = []
    for k in range(readings):
        busy = k >= readings // 3
        wobble = 4 * math.sin(k / 2.0)
        gpus = []
        for gpu in range(2):
            util = round((86 + 3 * gpu + wobble) if busy else 2.0 + gpu, 1)
            heat = min(1.0, max(0.0, (k - readings // 3) / 15)) if busy else 0.0
            temp = round(38 + 2 * gpu + 33 * heat, 1)
            gpus.append([util, 60000.0 + 500 * gpu if busy else 1024.0, temp, 60 + util * 2.4])
        history.append({"at": NOW - 10 * (readings - 1 - k), "gpus": gpus})
    return history


A100 = "NVIDIA A100 80GB PCIe"
WORKERS = [
    WorkerInfo(
        name="dxb-gpu-01",
        zone="ae-dxb",
        account="user:gpu01",
        state="busy",
        first_seen_at="2025-03-01T08:00:00.000000Z",
        last_seen_at=_iso(NOW),
        job_id=14,
        telemetry=Telemetry(
            gpus=[_gpu(0, A100, 88, 60000, 81920, 71), _gpu(1, A100, 91, 60500, 81920, 73)]
        ),
        history=_busy_history(60),
    ),
    WorkerInfo(
        name="dxb-gpu-02",
        zone="ae-dxb",
        account="user:gpu02",
        state="lost",
        first_seen_at="2025-03-01T08:00:00.000000Z",
        last_seen_at="2025-03-04T09:02:11.000000Z",
        job_id=None,
        telemetry=Telemetry(gpus=[_gpu(0, "NVIDIA L4", 0, 512, 23034, 41)]),
        history=[{"at": NOW - 3600, "gpus": [[0.0, 512.0, 41.0, 17.0]]}],
    ),
    WorkerInfo(
        name="dxb-laptop",
        zone="ae-dxb",
        account="user:gpu03",
        state="idle",
        first_seen_at="2025-03-02T08:00:00.000000Z",
        last_seen_at=_iso(NOW - 20),
        job_id=None,
        telemetry=Telemetry(note="no GPU"),
        history=[],
    ),
]


# -- rollouts and experiments --------------------------------------------------------------


def _step(at: str, by: str, action: str, ring: int, note: str) -> dict[str, Any]:
    return {"at": at, "by": by, "action": action, "ring": ring, "note": note}


def _rollout(
    id: int, model: str, version: int, previous: int | None, **extra: Any
) -> dict[str, Any]:
    rollout: dict[str, Any] = {
        "id": id,
        "model": model,
        "version": version,
        "previous": previous,
        "zone": "ae-dxb",
        "group": "cashiers",
        "strategy": "canary",
        "rings": [0.05, 0.25, 1.0],
        "first_agents": [],
        "ring": 1,
        "ring_count": 3,
        "state": "running",
        "soak_s": 300.0,
        "ring_started_at": "2025-03-04T09:00:00.000000Z",
        "agents_reached": [],
        "agents_standby": [],
        "steps": [],
        "created_by": "user:omar",
    }
    rollout.update(extra)
    return rollout


ROLLOUTS = [
    _rollout(
        1,
        "fraud",
        1,
        None,
        zone="ae-auh",
        group="lobby",
        state="aborted",
        steps=[
            _step("2025-03-02T10:00:00Z", "user:fatima", "start", 1, "ring 1 of 3"),
            _step("2025-03-02T10:04:00Z", "user:fatima", "abort", 1, "by an operator"),
        ],
    ),
    _rollout(
        2,
        "churn",
        3,
        2,
        ring=3,
        state="completed",
        steps=[
            _step("2025-03-03T12:00:00Z", "user:omar", "start", 1, "ring 1 of 3"),
            _step("2025-03-03T12:05:00Z", "system", "advance", 2, "gates passed"),
            _step("2025-03-03T12:10:00Z", "system", "advance", 3, "gates passed"),
            _step("2025-03-03T12:15:00Z", "user:omar", "complete", 3, "churn v3 in production"),
        ],
    ),
    _rollout(
        3,
        "churn",
        4,
        3,
        ring=2,
        agents_reached=[1, 2],
        steps=[
            _step("2025-03-04T09:00:00Z", "user:omar", "start", 1, "ring 1 of 3"),
            _step("2025-03-04T09:05:00Z", "system", "advance", 2, "gates passed"),
        ],
    ),
]


def _variant(name: str, version: int, weight: float, count: int, mean: float) -> dict[str, Any]:
    return {"name": name, "version": version, "weight": weight, "count": count, "mean": mean}


def _experiment(id: int, name: str, **extra: Any) -> dict[str, Any]:
    experiment: dict[str, Any] = {
        "id": id,
        "name": name,
        "model": "churn",
        "zone": "ae-dxb",
        "group": "default",
        "metric": "rate",
        "min_samples": 2000,
        "status": "running",
        "salt": "0" * 32,
        "created_by": "user:alice",
        "created_at": "2025-03-03T08:00:00.000000Z",
        "winner": None,
        "srm_p_value": 0.81,
        "comparisons": [],
    }
    experiment.update(extra)
    return experiment


EXPERIMENTS = [
    _experiment(
        1,
        "churn-spring",
        status="stopped",
        variants=[_variant("a", 2, 1.0, 2400, 0.118), _variant("b", 3, 1.0, 2391, 0.121)],
        verdict="no_difference",
        detail="no variant differs from the control at this significance",
        comparisons=[
            {
                "control": "a",
                "variant": "b",
                "difference": 0.003,
                "ci_low": -0.0154,
                "ci_high": 0.0214,
                "p_value": 0.749,
                "significant": False,
            }
        ],
    ),
    _experiment(
        2,
        "churn-v4-ab",
        variants=[_variant("a", 3, 0.5, 5210, 0.1213), _variant("b", 4, 0.5, 5188, 0.1342)],
        verdict="winner",
        winner="b",
        detail="b beats a (p=0.043)",
        comparisons=[
            {
                "control": "a",
                "variant": "b",
                "difference": 0.0129,
                "ci_low": 0.0004,
                "ci_high": 0.0254,
                "p_value": 0.043,
                "significant": True,
            }
        ],
    ),
]


# -- drift ---------------------------------------------------------------------------------

DRIFT_ALERTS = [  # newest first, as the hub lists them
    {
        "id": 3,
        "agent_id": 2,
        "model": "churn",
        "version": 3,
        "windows": 3,
        "opened_at": "2025-03-04T07:45:00.000000Z",
        "closed_at": None,
    },
    {
        "id": 2,
        "agent_id": 1,
        "model": "churn",
        "version": 3,
        "windows": 3,
        "opened_at": "2025-03-03T14:00:00.000000Z",
        "closed_at": "2025-03-03T16:30:00.000000Z",
    },
    {
        "id": 1,
        "agent_id": 3,
        "model": "fraud",
        "version": 1,
        "windows": 3,
        "opened_at": "2025-03-02T11:00:00.000000Z",
        "closed_at": "2025-03-02T11:45:00.000000Z",
    },
]

FEATURES = 4
THRESHOLD = 0.05 / FEATURES


def _windows(agent_id: int, model: str, count: int, drifting_from: int) -> list[dict[str, Any]]:
    """``count`` 15-minute windows ending at :data:`NOW`; from ``drifting_from`` on, drift."""
    windows = []
    for k in range(count):
        if k < drifting_from:
            smallest = 0.05 + 0.4 * (0.5 + 0.5 * math.sin(k * 1.7))
        else:
            smallest = 10 ** -(2.5 + 0.45 * (k - drifting_from))
        p_values = [round(smallest, 12), 0.41, 0.63, 0.88]
        end = NOW - 900 * (count - 1 - k)
        windows.append(
            {
                "agent_id": agent_id,
                "model": model,
                "version": 3,
                "drifted": smallest < THRESHOLD,
                "min_p_value": min(p_values),
                "method": "ks",
                "window_size": 1000,
                "started_at": _iso(end - 900),
                "ended_at": _iso(end),
                "p_values": p_values,
                "distances": [0.2, 0.01, 0.02, 0.01],
            }
        )
    return windows


DRIFT_REPORTS: list[dict[str, Any]] = [
    {"id": seq, **window}
    for seq, window in enumerate(
        [*_windows(1, "churn", 24, 30), *_windows(2, "churn", 48, 36)], start=1
    )
]


# -- serving -------------------------------------------------------------------------------


def _serving(agent_id: int, model: str, version: int, count: int, p95_ms: float) -> list[Any]:
    """``count`` five-minute serving summaries ending at :data:`NOW`, latency creeping up."""
    reports = []
    for k in range(count):
        end = NOW - 300 * (count - 1 - k)
        requests = 1200 + 40 * k
        reports.append(
            {
                "agent_id": agent_id,
                "received_at": _iso(end + 5),
                "summary": {
                    "model": model,
                    "version": version,
                    "variant": "",
                    "requests": requests,
                    "errors": k % 3,
                    "rejected": 0,
                    "latency_mean_s": p95_ms / 2500,
                    "latency_p95_s": (p95_ms + 2 * k) / 1000,
                    "started_at": end - 300,
                    "ended_at": end,
                },
            }
        )
    return reports


SERVING_REPORTS: list[dict[str, Any]] = [
    {"id": seq, **report}
    for seq, report in enumerate(
        [*_serving(1, "churn", 3, 12, 14.0), *_serving(2, "churn", 3, 12, 61.0)], start=1
    )
]
