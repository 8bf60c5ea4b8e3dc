"""A typed client for the hub's HTTP API, used by agents, the CLI and the demo.

Transport trouble becomes :class:`HubUnavailableError` (retry later); a 4xx
answer becomes :class:`HubRejectedError` carrying the hub's own explanation.
Every request carries the client's credentials; downloads are bounded and
streamed to disk.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import msgspec

from appliance import logs
from appliance.client.training import TrainingApi
from appliance.errors import BundleFormatError, HubRejectedError, HubUnavailableError
from appliance.security.credentials import Credentials
from appliance.wire.features import (
    DefineResult,
    EntityInfo,
    FeatureDefinitions,
    FeatureViewInfo,
    IngestResult,
    KeyValue,
    MaterializeResult,
    OnlineRequest,
    OnlineResponse,
    SnapshotRef,
)
from appliance.wire.fleet import (
    AgentAssignments,
    AgentInfo,
    AgentReleaseInfo,
    AgentReport,
    AgentUpgradeInfo,
    EnrolmentRequest,
    Heartbeat,
    InferenceKeyInfo,
    NewAgentUpgrade,
    NewInferenceKey,
    ReportsAccepted,
)
from appliance.wire.registry import ModelDetail, ModelSummary, VersionInfo

T = TypeVar("T")


def _with_request_id(request: httpx.Request) -> None:
    """Send the caller's request id (:mod:`appliance.logs`), so the hub logs the same one."""
    current = logs.request_id.get()
    if current is not None:
        request.headers[logs.REQUEST_ID_HEADER] = current


class HubClient(TrainingApi):
    def __init__(
        self,
        base_url: str,
        *,
        credentials: Credentials | None = None,
        verify: ssl.SSLContext | bool = True,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            verify=verify,
            event_hooks={"request": [_with_request_id]},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        token = self.credentials.bearer() if self.credentials else None
        return {"authorization": f"Bearer {token}"} if token else {}

    def _unreachable(self, exc: httpx.HTTPError) -> HubUnavailableError:
        return HubUnavailableError(
            f"hub at {self.base_url} is unreachable: {exc.__class__.__name__}: {exc}",
            hint="check that the hub is running, the URL is right and its CA is pinned",
        )

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        extra = kwargs.pop("headers", {})
        try:
            response = self._http.request(
                method, path, headers={**extra, **self._auth_headers()}, **kwargs
            )
            if (
                response.status_code == 401
                and self.credentials is not None
                and self.credentials.renew(self._http)
            ):
                response = self._http.request(
                    method, path, headers={**extra, **self._auth_headers()}, **kwargs
                )
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        _raise_for_status(response)
        return response

    def _typed(self, method: str, path: str, kind: type[T], **kwargs: Any) -> T:
        response = self._request(method, path, **kwargs)
        try:
            return msgspec.json.decode(response.content, type=kind)
        except msgspec.DecodeError as exc:
            raise HubUnavailableError(f"hub sent an unexpected answer to {path}: {exc}") from exc

    def _post_struct(self, path: str, body: msgspec.Struct, kind: type[T]) -> T:
        return self._typed(
            "POST",
            path,
            kind,
            content=msgspec.json.encode(body),
            headers={"content-type": "application/json"},
        )

    # -- models --------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self._typed("GET", "/health", dict[str, Any])

    def signing_key_pem(self) -> bytes:
        return self._request("GET", "/api/v1/keys/signing").content

    def list_models(self, *, after: str = "", limit: int = 100) -> list[ModelSummary]:
        """One page, by name; pass the last name seen as ``after`` for the next."""
        return self._typed(
            "GET", "/api/v1/models", list[ModelSummary], params={"after": after, "limit": limit}
        )

    def get_model(self, name: str) -> ModelDetail:
        return self._typed("GET", f"/api/v1/models/{name}", ModelDetail)

    def upload_model(
        self,
        name: str,
        model: bytes | IO[bytes],
        *,
        reference_npy: bytes | None = None,
        sample: bytes | None = None,
        metrics: dict[str, float] | None = None,
        lineage: dict[str, Any] | None = None,
        zones: list[str] | None = None,
        tolerance: dict[str, float] | None = None,
    ) -> VersionInfo:
        """Register ``model`` (its bytes, or an open file, which is streamed) as the next
        candidate version of ``name``."""
        files: dict[str, Any] = {"model": ("model", model, "application/octet-stream")}
        if reference_npy is not None:
            files["reference"] = ("reference.npy", reference_npy, "application/octet-stream")
        if sample is not None:
            files["sample"] = ("sample", sample, "application/octet-stream")
        metadata: dict[str, Any] = {"metrics": metrics or {}, "lineage": lineage or {}}
        if zones:
            metadata["zones"] = zones
        if tolerance:
            metadata["tolerance"] = tolerance
        return self._typed(
            "POST",
            f"/api/v1/models/{name}/versions",
            VersionInfo,
            files=files,
            data={"metadata": json.dumps(metadata)},
            timeout=300.0,
        )

    def change_stage(self, name: str, version: int, stage: str) -> VersionInfo:
        """Returns the version as it stands: for production, maybe still awaiting approvals."""
        return self._typed(
            "POST",
            f"/api/v1/models/{name}/versions/{version}/stage",
            VersionInfo,
            json={"stage": stage},
        )

    def approve_exposure(self, name: str, version: int) -> VersionInfo:
        """Approve a staging version for live traffic in rollout rings and A/B variants."""
        return self._typed(
            "POST", f"/api/v1/models/{name}/versions/{version}/exposure", VersionInfo
        )

    @contextmanager
    def stream(self, path: str, *, read_timeout: float) -> Iterator[httpx.Response]:
        """An open streaming GET of ``path``; the caller reads and checks the status.

        ``read_timeout`` bounds each wait for bytes; callers bound the total.
        """
        timeout = httpx.Timeout(read_timeout, connect=min(read_timeout, 10.0))
        try:
            with self._http.stream(
                "GET", path, timeout=timeout, headers=self._auth_headers()
            ) as response:
                yield response
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc

    def trusted_root(self) -> bytes:
        """The hub's current TUF root, for pinning when an agent is set up."""
        return self._request("GET", "/tuf/metadata/root.json").content

    def drift_reports(
        self, *, agent_id: int | None = None, model: str | None = None, after: int = 0
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"after": after}
        if agent_id is not None:
            params["agent_id"] = agent_id
        if model is not None:
            params["model"] = model
        return self._typed("GET", "/api/v1/drift/reports", list[dict[str, Any]], params=params)

    def serving_reports(self, *, agent_id: int | None = None) -> list[dict[str, Any]]:
        params = {} if agent_id is None else {"agent_id": agent_id}
        return self._typed("GET", "/api/v1/drift/serving", list[dict[str, Any]], params=params)

    def serving_history(
        self, *, agent_id: int | None = None, after: int = 0
    ) -> list[dict[str, Any]]:
        """Serving reports past id ``after``, oldest first, a page of 100 (as drift reports)."""
        params: dict[str, Any] = {"after": after}
        if agent_id is not None:
            params["agent_id"] = agent_id
        return self._typed("GET", "/api/v1/drift/serving", list[dict[str, Any]], params=params)

    def drift_alerts(self, *, open_only: bool = False) -> list[dict[str, Any]]:
        params = {"open": "true" if open_only else "false"}
        return self._typed("GET", "/api/v1/drift/alerts", list[dict[str, Any]], params=params)

    def create_experiment(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._typed("POST", "/api/v1/experiments/", dict[str, Any], json=spec)

    def start_rollout(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._typed("POST", "/api/v1/rollouts/", dict[str, Any], json=spec)

    def list_rollouts(self) -> list[dict[str, Any]]:
        """Every rollout, oldest first, each as :meth:`rollout` gives it."""
        return self._typed("GET", "/api/v1/rollouts/", list[dict[str, Any]])

    def rollout(self, rollout_id: int) -> dict[str, Any]:
        return self._typed("GET", f"/api/v1/rollouts/{rollout_id}", dict[str, Any])

    def act_on_rollout(self, rollout_id: int, action: str) -> dict[str, Any]:
        return self._typed("POST", f"/api/v1/rollouts/{rollout_id}/{action}", dict[str, Any])

    def promote_winner(self, name: str) -> dict[str, Any]:
        """Stop the experiment and approve its winner for production (approvers)."""
        return self._typed("POST", f"/api/v1/experiments/{name}/promote", dict[str, Any])

    def stop_experiment(self, name: str) -> dict[str, Any]:
        return self._typed("POST", f"/api/v1/experiments/{name}/stop", dict[str, Any])

    def list_experiments(self) -> list[dict[str, Any]]:
        """Every experiment, oldest first, each with its variants' counts and verdict."""
        return self._typed("GET", "/api/v1/experiments/", list[dict[str, Any]])

    def experiment(self, name: str) -> dict[str, Any]:
        return self._typed("GET", f"/api/v1/experiments/{name}", dict[str, Any])

    def send_reports(self, agent_id: int, reports: list[AgentReport]) -> ReportsAccepted:
        """Deliver outbox reports; the keys the hub holds, and those it refused (and why)."""
        return self._typed(
            "POST",
            f"/api/v1/agents/{agent_id}/reports",
            ReportsAccepted,
            content=msgspec.json.encode(reports),
            headers={"content-type": "application/json"},
        )

    def export_update(self, zone: str, group: str, dest: Path, *, days: int | None = None) -> str:
        """Save an offline update bundle for a group to ``dest``; return its expiry."""
        body = {"zone": zone, "group": group, "days": days}
        headers = self.download("/api/v1/updates/export", dest, max_bytes=64 << 30, json=body)
        return str(headers.get("x-update-expires", "?"))

    def download(self, path: str, dest: Path, *, max_bytes: int, json: Any = None) -> httpx.Headers:
        """Stream ``path`` (GET, or POST ``json``) into ``dest``; at most ``max_bytes``."""
        tmp = dest.with_name(dest.name + ".part")
        try:
            with self._http.stream(
                "GET" if json is None else "POST",
                path,
                json=json,
                timeout=300.0,
                headers=self._auth_headers(),
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for_status(response)
                received = 0
                with tmp.open("wb") as handle:
                    for chunk in response.iter_bytes(1 << 20):
                        received += len(chunk)
                        if received > max_bytes:
                            raise BundleFormatError(
                                f"download of {path} exceeds the {max_bytes} byte limit"
                            )
                        handle.write(chunk)
                    handle.flush()
                    os.fsync(handle.fileno())
                headers = response.headers
            os.replace(tmp, dest)
            return headers
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        finally:
            tmp.unlink(missing_ok=True)

    # -- people ----------------------------------------------------------------------

    def sign_in(self, username: str, password: str) -> dict[str, Any]:
        return self._typed(
            "POST",
            "/api/v1/auth/sign-in",
            dict[str, Any],
            json={"username": username, "password": password},
        )

    def whoami(self) -> dict[str, Any]:
        return self._typed("GET", "/api/v1/auth/me", dict[str, Any])

    def create_user(
        self, username: str, password: str, roles: list[str], *, zone: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"username": username, "password": password, "roles": roles}
        if zone is not None:
            body["zone"] = zone
        return self._typed("POST", "/api/v1/users", dict[str, Any], json=body)

    # -- agents --------------------------------------------------------------------

    def create_enrolment_token(
        self, zone: str, group: str = "default", ttl_s: int = 24 * 3600
    ) -> dict[str, Any]:
        return self._typed(
            "POST",
            "/api/v1/agents/enrolment-tokens",
            dict[str, Any],
            json={"zone": zone, "group": group, "ttl_s": ttl_s},
        )

    def enrol(self, request: EnrolmentRequest) -> AgentInfo:
        return self._post_struct("/api/v1/agents/enrol", request, AgentInfo)

    def revoke_agent(self, agent_id: int) -> AgentInfo:
        return self._typed("POST", f"/api/v1/agents/{agent_id}/revoke", AgentInfo)

    def create_inference_key(self, spec: NewInferenceKey) -> InferenceKeyInfo:
        """Issue a key for one group's client applications; ``.key`` holds it, this once."""
        return self._post_struct("/api/v1/inference-keys", spec, InferenceKeyInfo)

    def list_inference_keys(self, *, after: int = 0, limit: int = 100) -> list[InferenceKeyInfo]:
        params = {"after": after, "limit": limit}
        return self._typed("GET", "/api/v1/inference-keys", list[InferenceKeyInfo], params=params)

    def revoke_inference_key(self, key_id: int) -> InferenceKeyInfo:
        return self._typed("POST", f"/api/v1/inference-keys/{key_id}/revoke", InferenceKeyInfo)

    def heartbeat(self, agent_id: int, beat: Heartbeat) -> AgentInfo:
        return self._post_struct(f"/api/v1/agents/{agent_id}/heartbeat", beat, AgentInfo)

    def assignments(self, agent_id: int) -> AgentAssignments:
        return self._typed("GET", f"/api/v1/agents/{agent_id}/assignments", AgentAssignments)

    def list_agents(self, *, after: int = 0, limit: int = 100) -> list[AgentInfo]:
        """One page, by id; pass the last id seen as ``after`` for the next."""
        return self._typed(
            "GET", "/api/v1/agents", list[AgentInfo], params={"after": after, "limit": limit}
        )

    def get_agent(self, agent_id: int) -> AgentInfo:
        """One agent, with the hub's own judgement of its health."""
        return self._typed("GET", f"/api/v1/agents/{agent_id}", AgentInfo)

    def upload_agent_release(self, archive: IO[bytes]) -> AgentReleaseInfo:
        """Hand the hub a signed ``appliance-agent-<version>.tar`` (streamed) for agents to
        upgrade to; it keeps it only if the site's release key signed it."""
        files = {"archive": ("archive.tar", archive, "application/x-tar")}
        return self._typed(
            "POST", "/api/v1/agent-releases", AgentReleaseInfo, files=files, timeout=600.0
        )

    def list_agent_releases(self) -> list[AgentReleaseInfo]:
        return self._typed("GET", "/api/v1/agent-releases", list[AgentReleaseInfo])

    def download_agent_release(self, version: str, dest: Path) -> str:
        """Save the archive of agent release ``version`` to ``dest``; its SHA-256 as the
        hub says it (the caller checks the file, and its signature, before trusting it)."""
        path = f"/api/v1/agent-releases/{version}/archive"
        return str(self.download(path, dest, max_bytes=8 << 30).get("x-archive-sha256", ""))

    def start_agent_upgrade(self, spec: NewAgentUpgrade) -> AgentUpgradeInfo:
        """Take an agent group to a release the hub holds, ring by ring."""
        return self._post_struct("/api/v1/agent-upgrades", spec, AgentUpgradeInfo)

    def get_agent_upgrade(self, upgrade_id: int) -> AgentUpgradeInfo:
        return self._typed("GET", f"/api/v1/agent-upgrades/{upgrade_id}", AgentUpgradeInfo)

    def list_agent_upgrades(self) -> list[AgentUpgradeInfo]:
        return self._typed("GET", "/api/v1/agent-upgrades", list[AgentUpgradeInfo])

    def abort_agent_upgrade(self, upgrade_id: int) -> AgentUpgradeInfo:
        path = f"/api/v1/agent-upgrades/{upgrade_id}/abort"
        return self._typed("POST", path, AgentUpgradeInfo)

    # -- audit -----------------------------------------------------------------------

    def verify_audit(self) -> dict[str, Any]:
        return self._typed("POST", "/api/v1/audit/verify", dict[str, Any])

    def list_audit(
        self,
        *,
        after: int = 0,
        limit: int = 100,
        actor: str | None = None,
        action: str | None = None,
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"after": after, "limit": limit}
        if actor:
            params["actor"] = actor
        if action:
            params["action"] = action
        return self._typed("GET", "/api/v1/audit", list[dict[str, Any]], params=params)

    # -- features ----------------------------------------------------------------------

    def define_features(self, definitions: FeatureDefinitions) -> DefineResult:
        return self._post_struct("/api/v1/features/definitions", definitions, DefineResult)

    def list_feature_entities(self, *, after: str = "", limit: int = 100) -> list[EntityInfo]:
        params = {"after": after, "limit": limit}
        return self._typed("GET", "/api/v1/features/entities", list[EntityInfo], params=params)

    def list_feature_views(self, *, after: str = "", limit: int = 100) -> list[FeatureViewInfo]:
        params = {"after": after, "limit": limit}
        return self._typed("GET", "/api/v1/features/views", list[FeatureViewInfo], params=params)

    def get_feature_view(self, name: str, version: int | None = None) -> FeatureViewInfo:
        params = {"version": version} if version else {}
        return self._typed("GET", f"/api/v1/features/views/{name}", FeatureViewInfo, params=params)

    def ingest_features(
        self, view: str, content: bytes, *, filename: str, version: int | None = None
    ) -> IngestResult:
        """Upload a CSV or Parquet file; all rows are stored or none (422 names the bad ones)."""
        return self._typed(
            "POST",
            f"/api/v1/features/views/{view}/ingest",
            IngestResult,
            files={"file": (filename, content, "application/octet-stream")},
            data={"version": str(version)} if version else {},
            timeout=300.0,
        )

    def materialize_features(self, view: str) -> MaterializeResult:
        return self._typed(
            "POST", f"/api/v1/features/views/{view}/materialize", MaterializeResult, timeout=300.0
        )

    def online_features(
        self, view: str, keys: list[KeyValue | list[KeyValue]], *, zone: str | None = None
    ) -> OnlineResponse:
        request = OnlineRequest(view=view, keys=keys, zone=zone)
        return self._post_struct("/api/v1/features/online", request, OnlineResponse)

    def training_set(
        self,
        events: bytes,
        views: list[str],
        *,
        zone: str,
        filename: str = "events.parquet",
        timestamp_column: str = "event_timestamp",
    ) -> tuple[bytes, list[SnapshotRef]]:
        """The point-in-time training set as Parquet bytes, and the snapshots it read."""
        response = self._request(
            "POST",
            "/api/v1/features/training-sets",
            files={"events": (filename, events, "application/octet-stream")},
            data={
                "views": json.dumps(views),
                "zone": zone,
                "timestamp_column": timestamp_column,
            },
            timeout=600.0,
        )
        header = response.headers.get("x-feature-snapshots", "[]")
        return response.content, msgspec.json.decode(header, type=list[SnapshotRef])


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
        detail = body.get("detail") or body.get("error") or response.text
        hint = body.get("hint")
    except (ValueError, AttributeError):
        detail, hint = response.text[:300], None
    message = f"hub answered {response.status_code}: {detail}"
    if response.status_code >= 500:
        raise HubUnavailableError(message, hint=hint)
    raise HubRejectedError(message, status_code=response.status_code, hint=hint)
