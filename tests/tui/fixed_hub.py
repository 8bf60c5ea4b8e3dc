"""A hub double with fixed answers, for snapshots and the docs' captures.

It implements :class:`tui.HubApi` (the calls the console makes) with records
shaped exactly as the real hub's, and nothing that changes between runs: fixed
timestamps, fixed tokens. Behaviour is tested against the real hub elsewhere.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

from appliance.errors import HubRejectedError
from appliance.wire.fleet import AgentInfo, InstalledModel
from appliance.wire.registry import ModelDetail, ModelSummary, VersionInfo
from appliance.wire.training import JobInfo, LogLine, WorkerInfo
from tests.tui.fixed_records import (
    DRIFT_ALERTS,
    DRIFT_REPORTS,
    EXPERIMENTS,
    JOBS,
    LOGS,
    ROLLOUTS,
    SERVING_REPORTS,
    WORKERS,
)
from tui import ConsoleApp, HubApi

PASSWORD = "correct horse"
URL = "https://hub.site.example:8700"


def _agent(
    id: int, name: str, zone: str, group: str, runtime: str, health: str, seen: str, **extra: Any
) -> AgentInfo:
    return AgentInfo(
        id=id,
        name=name,
        zone=zone,
        group=group,
        runtime=runtime,
        labels={"rack": f"r{id}"},
        url=f"http://10.0.0.{10 + id}:8701",
        registered_at="2025-03-01T08:00:00.000000Z",
        last_seen_at=seen,
        health=health,
        detail=extra.pop("detail", None),
        models=extra.pop("models", []),
        enrolled_at="2025-03-01T08:00:00.000000Z",
        **extra,
    )


AGENTS = [
    _agent(
        1,
        "till-dxb-01",
        "ae-dxb",
        "cashiers",
        "onnxruntime",
        "ok",
        "2025-03-04T10:15:02.1Z",
        models=[
            InstalledModel(name="churn", version=3, runtime="onnxruntime"),
            InstalledModel(name="churn", version=4, runtime="onnxruntime", state="standby"),
        ],
    ),
    _agent(
        2,
        "till-dxb-02",
        "ae-dxb",
        "cashiers",
        "openvino",
        "degraded",
        "2025-03-04T10:14:40.3Z",
        detail="p99 latency over budget",
        models=[
            InstalledModel(name="churn", version=3, runtime="openvino"),
            InstalledModel(name="fraud", version=1, runtime="openvino", state="loading"),
        ],
    ),
    _agent(
        3,
        "kiosk-auh-01",
        "ae-auh",
        "lobby",
        "onnxruntime",
        "ok",
        "2025-03-02T17:00:00.0Z",
        revoked_at="2025-03-03T09:30:00.000000Z",
    ),
]


def _version(name: str, version: int, stage: Any, accuracy: float, **extra: Any) -> VersionInfo:
    return VersionInfo(
        name=name,
        version=version,
        stage=stage,
        created_at=f"2025-03-0{version}T09:00:00.000000Z",
        stage_changed_at=f"2025-03-0{version}T12:00:00.000000Z",
        metrics={"accuracy": accuracy, "f1": accuracy - 0.05},
        bundle_sha256="9f2c" * 16,
        bundle_length=48213,
        runtimes=["onnxruntime", "openvino"],
        inputs=[],
        outputs=[],
        lineage={"source": f"{name}.onnx", "dataset": "sales-2025q1"},
        created_by="user:alice",
        zones=["ae-dxb"],
        **extra,
    )


MODELS = {
    "churn": [
        _version("churn", 3, "production", 0.912, approvals=["user:omar", "user:fatima"]),
        _version("churn", 4, "staging", 0.927, approvals=["user:omar"]),
        _version("churn", 2, "archived", 0.884),
    ],
    "fraud": [_version("fraud", 1, "candidate", 0.801)],
}

AUDIT = [
    {
        "seq": seq,
        "at": f"2025-03-04T10:{seq:02d}:00.000000Z",
        "actor": actor,
        "action": action,
        "target": target,
        "outcome": outcome,
        "source": "10.0.0.2",
        "detail": detail,
    }
    for seq, (actor, action, target, outcome, detail) in enumerate(
        [
            ("user:admin", "auth.sign_in", "user:admin", "ok", {}),
            ("user:admin", "agent.token_create", "token:1", "ok", {"zone": "ae-dxb"}),
            ("agent:till-dxb-01", "agent.enrol", "agent:1", "ok", {"group": "cashiers"}),
            ("user:alice", "model.upload", "model:churn/4", "ok", {"accuracy": 0.927}),
            ("user:alice", "model.stage_change", "model:churn/4", "ok", {"to": "staging"}),
            ("user:omar", "model.approve", "model:churn/4", "ok", {"approvals": 1}),
            ("user:alice", "model.approve", "model:churn/4", "refused", {"reason": "author"}),
            ("agent:kiosk-auh-01", "residency.decision", "model:churn/3", "refused", {}),
            ("user:admin", "agent.revoke", "agent:3", "ok", {}),
        ],
        start=1,
    )
]


PERMISSIONS = [
    "agents:read",
    "agents:enrol",
    "agents:revoke",
    "models:read",
    "models:stage",
    "models:approve",
    "audit:read",
    "training:read",
    "training:submit",
    "updates:export",
]
"""Every permission the console asks about, so every key shows in the captures (no one
role holds them all on a real hub)."""
READ_ONLY = "hub answered 403: read-only double"


class FixedHub:
    """Answers as a hub would, always the same; changes are refused (read-only)."""

    base_url = URL

    def __init__(self, actor: str = "user:admin", roles: tuple[str, ...] = ("admin",)) -> None:
        self.actor = actor
        self.roles = roles

    def whoami(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "roles": list(self.roles),
            "permissions": list(PERMISSIONS),
        }

    def list_agents(self) -> list[AgentInfo]:
        return list(AGENTS)

    def create_enrolment_token(
        self, zone: str, group: str = "default", ttl_s: int = 24 * 3600
    ) -> dict[str, Any]:
        return {
            "token": "enr_FIXED",
            "zone": zone,
            "group": group,
            "expires_at": "2025-03-05T10:00:00.000000Z",
        }

    def revoke_agent(self, agent_id: int) -> AgentInfo:
        raise HubRejectedError(READ_ONLY, status_code=403)

    def list_models(self) -> list[ModelSummary]:
        return [
            ModelSummary(
                name=name,
                created_at=versions[-1].created_at,
                latest_version=max(v.version for v in versions),
                production_version=None,
            )
            for name, versions in MODELS.items()
        ]

    def get_model(self, name: str) -> ModelDetail:
        return ModelDetail(name=name, created_at="2025-03-01T09:00:00Z", versions=MODELS[name])

    def change_stage(self, name: str, version: int, stage: str) -> VersionInfo:
        raise HubRejectedError(READ_ONLY, status_code=403)

    def list_audit(
        self,
        *,
        after: int = 0,
        limit: int = 100,
        actor: str | None = None,
        action: str | None = None,
    ) -> list[dict[str, Any]]:
        found = [
            e
            for e in AUDIT
            if e["seq"] > after and actor in (None, e["actor"]) and action in (None, e["action"])
        ]
        return found[:limit]

    def verify_audit(self) -> dict[str, Any]:
        return {
            "ok": True,
            "entries_checked": len(AUDIT),
            "checkpoints_checked": 2,
            "first_bad_seq": None,
            "reason": None,
        }

    def training_jobs(
        self, *, state: str | None = None, model: str | None = None, limit: int = 100
    ) -> list[JobInfo]:
        return [j for j in JOBS if state in (None, j.state) and model in (None, j.model)][:limit]

    def training_logs(self, job_id: int, *, after: int = 0) -> list[LogLine]:
        return [line for line in LOGS.get(job_id, []) if line.seq > after]

    def cancel_training(self, job_id: int) -> JobInfo:
        raise HubRejectedError(READ_ONLY, status_code=403)

    def training_workers(self) -> list[WorkerInfo]:
        return list(WORKERS)

    def list_rollouts(self) -> list[dict[str, Any]]:
        return list(ROLLOUTS)

    def start_rollout(self, spec: dict[str, Any]) -> dict[str, Any]:
        raise HubRejectedError(READ_ONLY, status_code=403)

    def act_on_rollout(self, rollout_id: int, action: str) -> dict[str, Any]:
        raise HubRejectedError(READ_ONLY, status_code=403)

    def list_experiments(self) -> list[dict[str, Any]]:
        return list(EXPERIMENTS)

    def stop_experiment(self, name: str) -> dict[str, Any]:
        raise HubRejectedError(READ_ONLY, status_code=403)

    def promote_winner(self, name: str) -> dict[str, Any]:
        raise HubRejectedError(READ_ONLY, status_code=403)

    def export_update(self, zone: str, group: str, dest: Path, *, days: int | None = None) -> str:
        """A tar holding one fixed file (the hub itself is not changed by an export)."""
        body = f"{zone}/{group}".encode()
        member = tarfile.TarInfo("metadata/targets.json")
        member.size = len(body)
        with tarfile.open(dest, "w") as tar:
            tar.addfile(member, io.BytesIO(body))
        return "2025-04-03T10:00:00.000000Z"

    def drift_alerts(self, *, open_only: bool = False) -> list[dict[str, Any]]:
        return [a for a in DRIFT_ALERTS if not open_only or a["closed_at"] is None]

    def drift_reports(
        self, *, agent_id: int | None = None, model: str | None = None, after: int = 0
    ) -> list[dict[str, Any]]:
        found = [
            r
            for r in DRIFT_REPORTS
            if r["id"] > after and agent_id in (None, r["agent_id"]) and model in (None, r["model"])
        ]
        return found[:100]

    def serving_history(
        self, *, agent_id: int | None = None, after: int = 0
    ) -> list[dict[str, Any]]:
        found = [
            r for r in SERVING_REPORTS if r["id"] > after and agent_id in (None, r["agent_id"])
        ]
        return found[:100]

    def close(self) -> None:
        pass


def connect(username: str, password: str) -> HubApi:
    if password != PASSWORD:
        raise HubRejectedError("hub answered 401: wrong username or password", status_code=401)
    return FixedHub(f"user:{username}")


def fixed_app() -> ConsoleApp:
    """The console over the fixed hub; it never refreshes on its own (snapshots stay still)."""
    return ConsoleApp(connect, URL, username="admin", refresh_s=3600)
