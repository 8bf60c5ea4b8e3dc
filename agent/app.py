"""The agent's application: Open Inference Protocol v2 over HTTP.

Inference goes through :mod:`agent.fastpath`; the other routes are Litestar's.

Errors follow the protocol's shape, ``{"error": "<message>"}``, with the status
codes of :mod:`appliance.http_status`; 413 when a body is over the limit.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from functools import partial
from typing import Any, cast
from urllib.parse import urlsplit

import msgspec
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler
from litestar.handlers.http_handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin

from agent import state_schema, v2_codec
from agent.access import DataPlaneAccess
from agent.batching import Batchers, parse_policies
from agent.core import AgentCore
from agent.drift.monitor import DriftMonitor, DriftSettings
from agent.drift.spool import RowSpool
from agent.experiments import ExperimentRouter
from agent.extensions import EXTENSIONS, repository_index, statistics
from agent.fastpath import HEADER_LENGTH, InferFn, header_length, with_fast_inference
from agent.follower import InstallFollower
from agent.identity import AgentIdentity, credentials, device_key, enrol, load_identity
from agent.inference import InferenceCore
from agent.installer import DeviceKey, InstallPolicy, restore_installed
from agent.lanes import InferenceLanes
from agent.lifecycle import Lifecycle
from agent.metrics import AgentMetrics, StateSources
from agent.outbox import Outbox
from agent.peers import Peers
from agent.probation import ProbationPolicy
from agent.repository import LoadedModel, ModelRepository
from agent.request_ledger import LEDGER_FILE, SharedLedger
from agent.status import agent_status, owner_drifts, owner_reachable
from agent.store import BundleStore
from agent.sync import SyncWorker
from agent.updates.trusted import cached_experiments, metadata_dir, pinned_root
from appliance import __version__, logs
from appliance.asgi import (
    ASGIApp,
    Scope,
    client_certificate_sha256,
    with_access_log,
    with_request_id,
    with_sane_paths,
)
from appliance.client.hub import HubClient
from appliance.errors import ApplianceError, ConfigError, nested_too_deeply
from appliance.http_status import status_for
from appliance.security.tls import client_ssl_context
from appliance.settings import AgentSettings

log = logging.getLogger(__name__)
access_log = logging.getLogger("agent.access")

_PLATFORMS = {"onnxruntime": "onnxruntime_onnx", "openvino": "openvino_ir"}


class Feedback(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    """The ``id`` of the inference response."""
    outcome: float
    """1/0 for a rate (converted, correct), or the value of a continuous metric."""


def hub_client(settings: AgentSettings, identity: AgentIdentity | None) -> HubClient:
    verify = (
        client_ssl_context(
            settings.link.hub_ca,
            client_cert=settings.link.client_cert,
            client_key=settings.link.client_key,
        )
        if settings.link.hub_ca
        else True
    )
    creds = credentials(settings.data_dir, identity) if identity else None
    return HubClient(settings.hub_url, credentials=creds, verify=verify, timeout=30.0)


_WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]"})


def advertised_url(settings: AgentSettings) -> str:
    """Where the hub and the console reach this agent (``APPLIANCE_AGENT_URL``); by
    default its bind address, or the machine's name when it binds every address."""
    if settings.agent_url:
        parts = urlsplit(settings.agent_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"APPLIANCE_AGENT_URL {settings.agent_url!r} is not an http(s) URL with a host",
                hint="e.g. https://edge-7.branch.example:8701",
            )
        return settings.agent_url.rstrip("/")
    scheme = "http" if settings.serving.plain_http else "https"
    host = socket.getfqdn() if settings.host in _WILDCARDS else settings.host
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return f"{scheme}://{host}:{settings.agent_port}"


def ensure_enrolled(settings: AgentSettings) -> AgentIdentity:
    """This agent's identity; enrol first if a token was given and it has none yet."""
    identity = load_identity(settings.data_dir)
    if identity is None:
        if not settings.link.enrol_token:
            raise ConfigError(
                f"agent in {settings.data_dir} is not enrolled with a hub",
                hint="ask an admin for a token ('appliance agent token --zone Z') and start "
                "with --enrol-token TOKEN, or run 'appliance agent enrol'",
            )
        pinned = settings.link.trusted_root.read_bytes() if settings.link.trusted_root else None
        with hub_client(settings, None) as client:
            identity = enrol(
                client,
                settings.data_dir,
                token=settings.link.enrol_token,
                name=settings.agent_name,
                runtime=settings.runtime,
                labels=dict(label.split("=", 1) for label in settings.labels if "=" in label),
                url=advertised_url(settings),
                trusted_root=pinned,
            )
        log.info(
            "enrolled as %s (id %d) in zone %s, group %s",
            identity.name,
            identity.agent_id,
            identity.zone,
            identity.group,
        )
    if settings.zone and settings.zone != identity.zone:
        raise ConfigError(
            f"agent was enrolled in zone {identity.zone}, not {settings.zone}",
            hint="the zone comes from the enrolment token; drop --zone or enrol again",
        )
    return identity


def build_core(
    settings: AgentSettings, *, start_sync: bool = True, serving_only: bool = False
) -> AgentCore:
    """Recover from an interrupted update, serve what is installed, then start syncing.

    ``serving_only``: a serving process of ``--workers N`` (:mod:`agent.follower`), which
    serves what the owning process installed and neither syncs, recovers nor tests drift.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if serving_only:
        state_schema.check(settings.data_dir)  # the owner migrates; a follower only reads
    else:
        state_schema.prepare(settings.data_dir)
    policy = InstallPolicy(runtime=settings.runtime, threads=settings.inference.threads)
    store = BundleStore(settings.data_dir)
    repository = ModelRepository()
    start_sync = start_sync and not serving_only
    identity = ensure_enrolled(settings) if start_sync else load_identity(settings.data_dir)
    key = device_key(settings.data_dir, identity) if identity else DeviceKey(0, None)
    if not serving_only:
        _recover(store, repository, policy, key)
    outbox = Outbox(settings.data_dir, max_reports=settings.link.outbox_max_reports)
    drift = _drift_monitor(settings, outbox)
    holder: list[SyncWorker] = []
    batchers = Batchers(parse_policies(settings.serving.batching), settings.inference.workers)
    lanes = _lanes(settings, repository, batchers)
    peers = _peers(settings, serving_only)
    owner = peers if serving_only else None  # a serving process: the owner knows these
    reachable: Callable[[], bool] = (
        partial(owner_reachable, owner)
        if owner
        else lambda: bool(holder and holder[0].status.hub_reachable)
    )
    sources = StateSources(
        repository,
        outbox,
        drift,
        reachable,
        lanes.admitted,
        drift_results=partial(owner_drifts, owner) if owner else None,
    )
    metrics = AgentMetrics(sources, peers)
    # feedback may reach another process than the one that answered (--workers)
    router = ExperimentRouter(SharedLedger(peers.folder / LEDGER_FILE) if peers else None)
    router.update(cached_experiments(settings.data_dir))  # so cohorts hold with the hub away
    access = DataPlaneAccess(open_access=settings.serving.open_data_plane)
    access.reload(metadata_dir(settings.data_dir))  # the keys hold with the hub away too
    core = AgentCore(
        settings,
        store,
        repository,
        policy,
        outbox,
        drift,
        metrics,
        router,
        access,
        lanes,
        InferenceCore(
            repository,
            metrics,
            RowSpool(peers.folder, settings.drift.window_rows) if peers and serving_only else drift,
            router,
            frozenset(settings.serving.allow_non_finite),
            batchers,
        ),
    )
    core.peers = peers
    if serving_only:
        core.follower = InstallFollower(store, repository, policy, key, access, router)
        core.follower.follow()
    if start_sync and identity is not None:
        core.sync = _sync_worker(core, identity, key)
        holder.append(core.sync)
    return core


def _recover(
    store: BundleStore, repository: ModelRepository, policy: InstallPolicy, key: DeviceKey
) -> None:
    """Finish or undo an update a crash interrupted, then load what is installed."""
    with store.install_lock():
        store.clear_staging()
        for note in store.recover():
            log.error("%s", note)
        for model in restore_installed(store, repository, policy, key):
            log.info("restored %s v%d from disk", model.name, model.version)


def _drift_monitor(settings: AgentSettings, outbox: Outbox) -> DriftMonitor:
    return DriftMonitor(
        outbox,
        DriftSettings(
            window_rows=settings.drift.window_rows,
            min_rows=min(200, settings.drift.window_rows),
            every_requests=settings.drift.every_requests,
            interval_s=settings.drift.interval_s,
            p_value=settings.drift.p_value,
            backend=settings.drift.backend,
        ),
    )


def _lanes(
    settings: AgentSettings, repository: ModelRepository, batchers: Batchers
) -> InferenceLanes:
    return InferenceLanes(
        workers=settings.inference.workers,
        queue=settings.inference.queue,
        timeout_s=settings.inference.timeout_s,
        known=repository.serves,
        width=batchers.width,
        inline_below_s=settings.inference.inline_ms / 1000,
        batched=batchers.batched,
    )


def _peers(settings: AgentSettings, serving_only: bool) -> Peers | None:
    """The processes answering this agent's port, when there are several (``--workers``);
    the owner starts from an empty folder."""
    if not serving_only and settings.serving.processes <= 1:
        return None
    peers = Peers(settings.data_dir / "processes", "serving" if serving_only else "owner")
    if not serving_only:
        peers.clear()
    return peers


def _sync_worker(core: AgentCore, identity: AgentIdentity, key: DeviceKey) -> SyncWorker:
    settings = core.settings
    return SyncWorker(
        settings,
        hub_client(settings, identity),
        core.store,
        core.repository,
        core.policy,
        identity,
        key=key,
        root=pinned_root(settings.data_dir),
        probation=ProbationPolicy(
            requests=settings.probation.requests, seconds=settings.probation.seconds
        ),
        outbox=core.outbox,
        router=core.router,
        access=core.access,
        elsewhere=core.peers.requests if core.peers else None,
    )


def _error(status: int, message: str) -> Response[bytes]:
    return Response(
        content=v2_codec.encode_error(message),
        status_code=status,
        media_type=MediaType.JSON,
    )


def _appliance_error(_request: Request[Any, Any, Any], exc: ApplianceError) -> Response[bytes]:
    return _error(status_for(exc), str(exc))


def _http_error(_request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    return _error(exc.status_code, exc.detail)


def _metadata(model: LoadedModel) -> dict[str, object]:
    return v2_codec.model_metadata(model.manifest, _PLATFORMS[model.runtime.kind])


def inference(
    repository: ModelRepository,
    metrics: AgentMetrics | None = None,
    drift: DriftMonitor | None = None,
    router: ExperimentRouter | None = None,
    allow_non_finite: frozenset[str] = frozenset(),
) -> InferFn:
    """The v2 infer operation over HTTP on a core of its own (tests, benchmarks)."""
    return http_inference(InferenceCore(repository, metrics, drift, router, allow_non_finite))


def http_inference(core: InferenceCore) -> InferFn:
    """The v2 infer operation over HTTP: request bytes in, response bytes out, errors
    raised; the work is ``core``'s, which the gRPC front shares."""

    def run_inference(
        name: str,
        version: int | None,
        body: bytes,
        subject: str | None = None,
        header_length: int | None = None,
    ) -> v2_codec.Answer:
        done = core.run(
            name, version, lambda: v2_codec.decode_request(body, header_length), subject
        )
        return v2_codec.encode_response(
            done.model.name,
            done.model.version,
            done.request_id,
            done.results,
            done.names,
            done.parameters,
            v2_codec.binary_outputs(done.request, done.names),
        )

    return run_inference


def create_app(core: AgentCore) -> ASGIApp:
    """The agent's ASGI app: the inference fast path in front of the Litestar app; every
    request gets an id (answered in ``X-Request-ID``) and, unless turned off, one access
    line in the log."""
    limit = core.settings.serving.max_request_mb * 1024 * 1024
    infer = http_inference(core.inference)
    litestar_app = cast(ASGIApp, create_litestar_app(core, infer))  # ASGI types: naming only
    app = with_sane_paths(
        with_fast_inference(litestar_app, infer, limit, core.access, core.lanes),
        lambda exc: v2_codec.encode_error(str(exc)),
    )
    if core.settings.serving.access_log:
        app = with_access_log(app, access_log)
    return with_request_id(app)


def grpc_servicer(core: AgentCore) -> Any:
    """The gRPC front (:mod:`agent.grpc_front`) over the same inference core as HTTP."""
    # lazy: grpcio takes 0.25 s; not loaded when gRPC is off
    from agent.grpc_front import InferenceServicer

    return InferenceServicer(core.repository, core.inference, core.access, _PLATFORMS)


def create_litestar_app(core: AgentCore, infer: InferFn) -> Litestar:
    """Metadata, health, status, feedback; also runs the lifespan and serves the agent's
    OpenAPI document at ``/schema/openapi.json``.

    The two infer routes are answered by the fast path in front (:mod:`agent.fastpath`);
    they are declared here too, so that the document describes them and a request the fast
    path passes on is still answered the same way."""
    keyed = _keyed(core)
    lifecycle = Lifecycle(core)
    return Litestar(
        route_handlers=[
            *_protocol_routes(core, keyed),
            *_infer_routes(infer, keyed),
            *_agent_routes(core, keyed),
        ],
        exception_handlers={
            ApplianceError: _appliance_error,
            HTTPException: _http_error,
            RecursionError: lambda request, _exc: _appliance_error(request, nested_too_deeply()),
        },
        request_max_body_size=core.settings.serving.max_request_mb * 1024 * 1024,
        on_startup=[lifecycle.start],
        on_shutdown=[lifecycle.stop],
        openapi_config=OpenAPIConfig(
            title="Appliance agent (Open Inference Protocol v2)",
            version=__version__,
            path="/schema",
            render_plugins=[JsonRenderPlugin()],
        ),
        logging_config=None,
    )


Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]


def _keyed(core: AgentCore) -> Guard:
    def keyed(connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
        """An inference key for this model (any model, for status and metrics)."""
        caller = core.access.check(
            connection.headers.get("authorization"),
            connection.path_params.get("name"),
            client_certificate_sha256(cast(Scope, connection.scope)),
        )
        logs.actor.set(caller)  # this request's log lines name who made it

    return keyed


def _protocol_routes(core: AgentCore, keyed: Guard) -> list[HTTPRouteHandler]:
    """The Open Inference Protocol's metadata and health, and its repository and
    statistics extensions."""
    repository = core.repository

    @get("/v2", operation_id="serverMetadata")
    async def server_metadata() -> dict[str, object]:
        return {
            "name": "appliance-agent",
            "version": __version__,
            "extensions": EXTENSIONS,
        }

    @get("/v2/health/live", operation_id="serverLive")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @get("/v2/health/ready", operation_id="serverReady")
    async def ready() -> Response[dict[str, bool]]:
        ok = bool(repository.all())
        return Response({"ready": ok}, status_code=200 if ok else 503)

    @get("/v2/models/{name:str}", operation_id="modelMetadata", guards=[keyed])
    async def model_metadata(name: str) -> dict[str, object]:
        return _metadata(repository.get(name))

    @get("/v2/models/{name:str}/ready", operation_id="modelReady", guards=[keyed])
    async def model_ready(name: str) -> dict[str, object]:
        return {"name": name, "ready": repository.get(name) is not None}

    @get(
        "/v2/models/{name:str}/versions/{version:int}",
        operation_id="modelVersionMetadata",
        guards=[keyed],
    )
    async def version_metadata(name: str, version: int) -> dict[str, object]:
        return _metadata(repository.get(name, version))

    @get(
        "/v2/models/{name:str}/versions/{version:int}/ready",
        operation_id="modelVersionReady",
        guards=[keyed],
    )
    async def version_ready(name: str, version: int) -> dict[str, object]:
        repository.get(name, version)
        return {"name": name, "version": str(version), "ready": True}

    @post("/v2/repository/index", operation_id="repositoryIndex", status_code=200, guards=[keyed])
    async def index() -> list[dict[str, str]]:
        """Every model version this agent has loaded (the model repository extension)."""
        return repository_index(repository)

    @get("/v2/models/stats", operation_id="serverStatistics", guards=[keyed])
    async def all_stats() -> dict[str, Any]:
        return statistics(repository, core.metrics, core.inference.batchers)

    @get("/v2/models/{name:str}/stats", operation_id="modelStatistics", guards=[keyed])
    async def model_stats(name: str) -> dict[str, Any]:
        """Inferences that succeeded and failed, and time spent (the statistics extension)."""
        return statistics(repository, core.metrics, core.inference.batchers, name)

    @get(
        "/v2/models/{name:str}/versions/{version:int}/stats",
        operation_id="modelVersionStatistics",
        guards=[keyed],
    )
    async def version_stats(name: str, version: int) -> dict[str, Any]:
        return statistics(repository, core.metrics, core.inference.batchers, name, version)

    return [
        server_metadata,
        live,
        ready,
        model_metadata,
        model_ready,
        version_metadata,
        version_ready,
        index,
        all_stats,
        model_stats,
        version_stats,
    ]


def _infer_routes(infer: InferFn, keyed: Guard) -> list[HTTPRouteHandler]:
    """The two infer routes, as Litestar would answer them (the fast path answers first)."""

    async def infer_here(
        name: str, version: int | None, request: Request[Any, Any, Any]
    ) -> Response[bytes]:
        answer = infer(
            name,
            version,
            await request.body(),
            request.headers.get("x-subject-id"),
            header_length(request.headers.get(HEADER_LENGTH)),
        )
        if answer.header_length is None:
            return Response(answer.body, media_type=MediaType.JSON)
        return Response(
            answer.body,
            media_type="application/octet-stream",
            headers={HEADER_LENGTH: str(answer.header_length)},
        )

    @post(
        "/v2/models/{name:str}/infer",
        operation_id="modelInfer",
        status_code=200,
        guards=[keyed],
        responses={200: ResponseSpec(v2_codec.InferResponse, description="the outputs")},
    )
    async def model_infer(
        name: str, data: v2_codec.InferRequest, request: Request[Any, Any, Any]
    ) -> Response[bytes]:
        """Run the model (its A/B variant when under an experiment; ``X-Subject-Id`` keeps a
        subject on one variant)."""
        return await infer_here(name, None, request)

    @post(
        "/v2/models/{name:str}/versions/{version:int}/infer",
        operation_id="modelVersionInfer",
        status_code=200,
        guards=[keyed],
        responses={200: ResponseSpec(v2_codec.InferResponse, description="the outputs")},
    )
    async def model_version_infer(
        name: str, version: int, data: v2_codec.InferRequest, request: Request[Any, Any, Any]
    ) -> Response[bytes]:
        """Run this version of the model, whatever experiment is running."""
        return await infer_here(name, version, request)

    return [model_infer, model_version_infer]


def _agent_routes(core: AgentCore, keyed: Guard) -> list[HTTPRouteHandler]:
    """The agent's own: its status, Prometheus metrics, and A/B feedback."""

    @get("/agent/status", operation_id="agentStatus", guards=[keyed])
    async def status() -> dict[str, object]:
        return agent_status(core)

    @get(
        "/metrics",
        operation_id="metrics",
        media_type="text/plain; version=0.0.4",
        guards=[keyed],
    )
    async def metrics() -> Response[bytes]:
        return Response(core.metrics.render(), media_type="text/plain; version=0.0.4")

    @post(
        "/v2/models/{name:str}/feedback",
        operation_id="modelFeedback",
        status_code=200,
        guards=[keyed],
    )
    async def feedback(name: str, data: Feedback) -> dict[str, object]:
        """The true outcome of an answered request (A/B experiments), by its request id."""
        experiment, variant = core.router.feedback(data.id, data.outcome)
        return {"id": data.id, "experiment": experiment, "variant": variant}

    return [status, metrics, feedback]
