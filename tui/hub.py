"""What the console needs from the hub, and how it signs in.

The screens talk to a :class:`HubApi`: the subset of
:class:`appliance.client.hub.HubClient` they call. The real client satisfies it
as is; snapshot tests pass a double with fixed data that implements the same
methods. A :data:`Connector` turns a username and password into a signed-in
``HubApi``; :class:`HubConnector` is the real one (tokens kept in memory only,
renewed by the client on a 401).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from appliance.client.hub import HubClient
from appliance.errors import ApplianceError, HubRejectedError, HubUnavailableError
from appliance.security.credentials import UserCredentials
from appliance.wire.fleet import AgentInfo
from appliance.wire.registry import ModelDetail, ModelSummary, VersionInfo
from appliance.wire.training import JobInfo, LogLine, WorkerInfo


class HubApi(Protocol):
    """The hub calls the console makes (all of them on worker threads)."""

    base_url: str

    def whoami(self) -> dict[str, Any]: ...

    def list_agents(self) -> list[AgentInfo]: ...

    def create_enrolment_token(
        self, zone: str, group: str = "default", ttl_s: int = 24 * 3600
    ) -> dict[str, Any]: ...

    def revoke_agent(self, agent_id: int) -> AgentInfo: ...

    def list_models(self) -> list[ModelSummary]: ...

    def get_model(self, name: str) -> ModelDetail: ...

    def change_stage(self, name: str, version: int, stage: str) -> VersionInfo: ...

    def list_audit(
        self,
        *,
        after: int = 0,
        limit: int = 100,
        actor: str | None = None,
        action: str | None = None,
    ) -> list[dict[str, Any]]: ...

    def verify_audit(self) -> dict[str, Any]: ...

    def training_jobs(
        self, *, state: str | None = None, model: str | None = None, limit: int = 100
    ) -> list[JobInfo]: ...

    def training_logs(self, job_id: int, *, after: int = 0) -> list[LogLine]: ...

    def cancel_training(self, job_id: int) -> JobInfo: ...

    def training_workers(self) -> list[WorkerInfo]: ...

    def list_rollouts(self) -> list[dict[str, Any]]: ...

    def start_rollout(self, spec: dict[str, Any]) -> dict[str, Any]: ...

    def act_on_rollout(self, rollout_id: int, action: str) -> dict[str, Any]: ...

    def list_experiments(self) -> list[dict[str, Any]]: ...

    def stop_experiment(self, name: str) -> dict[str, Any]: ...

    def promote_winner(self, name: str) -> dict[str, Any]: ...

    def export_update(
        self, zone: str, group: str, dest: Path, *, days: int | None = None
    ) -> str: ...

    def drift_alerts(self, *, open_only: bool = False) -> list[dict[str, Any]]: ...

    def drift_reports(
        self, *, agent_id: int | None = None, model: str | None = None, after: int = 0
    ) -> list[dict[str, Any]]: ...

    def serving_history(
        self, *, agent_id: int | None = None, after: int = 0
    ) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


Connector = Callable[[str, str], HubApi]
"""``(username, password) -> signed-in hub``; raises :class:`ApplianceError` subclasses."""


@dataclass(frozen=True)
class HubConnector:
    """Signs in to the hub at ``url``, pinning the site CA through ``verify``."""

    url: str
    verify: ssl.SSLContext | bool = True
    timeout: float = 10.0

    def __call__(self, username: str, password: str) -> HubApi:
        with HubClient(self.url, verify=self.verify, timeout=self.timeout) as anonymous:
            tokens = anonymous.sign_in(username, password)
        credentials = UserCredentials(tokens["access_token"], tokens["refresh_token"], self.url)
        return HubClient(
            self.url, credentials=credentials, verify=self.verify, timeout=self.timeout
        )


def describe(exc: ApplianceError) -> str:
    """One line for an operator: what went wrong and what to do, never a traceback."""
    if isinstance(exc, HubRejectedError):
        if exc.status_code == 401:
            return "Wrong username or password, or the session has expired: sign in again."
        if exc.status_code == 403:
            return f"Not allowed for your roles. {exc.message}"
        if exc.status_code == 429:
            return "Too many attempts; wait a minute and try again."
    if isinstance(exc, HubUnavailableError):
        return f"Cannot reach the hub. {exc}"
    return str(exc)
