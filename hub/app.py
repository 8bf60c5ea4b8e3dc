"""The hub's Litestar application factory: services, routes, auth, limits, errors."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, cast

import msgspec
from litestar import Litestar, Request, Router, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi import OpenAPIConfig
from litestar.response import Response
from litestar.types import ControllerRouterHandler

from appliance import __version__, logs
from appliance.asgi import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    with_access_log,
    with_request_id,
    with_sane_paths,
)
from appliance.errors import ApplianceError, nested_too_deeply
from appliance.security.keys import public_pem
from appliance.settings import HubSettings
from hub.access.controllers import InferenceKeyController
from hub.agent_releases.controllers import AgentReleaseController, AgentReleaseUploadController
from hub.agent_upgrades.controllers import AgentUpgradeController
from hub.audit.controllers import AuditController
from hub.audit.service import AuditReader
from hub.auth.guards import OPEN_PATHS, BearerAuthMiddleware, open_endpoint, requires
from hub.auth.roles import Permission
from hub.errors_http import appliance_error_handler, error_body
from hub.experiments.controllers import ExperimentController
from hub.features.controllers import FeatureController, FeatureUploadController
from hub.features.fastpath import OnlineLookup, with_fast_online_lookup
from hub.fleet.controllers import AgentController, BundleController
from hub.identity.controllers import AuthController, UserController
from hub.lifecycle import HubLifecycle
from hub.metrics import HubMetrics
from hub.monitoring.controllers import DriftController, ReportsController
from hub.registry.controllers import ModelController, ModelUploadController
from hub.rollouts.controllers import RolloutController
from hub.services import HubServices, build_services
from hub.training.controllers import TrainingController, TrainingUploadController
from hub.updates.controllers import TufController, UpdatesController

JSON_BODY_LIMIT = 1 << 20
"""Every endpoint takes at most 1 MiB, except model uploads (their own, larger limit)."""
access_log = logging.getLogger("hub.access")
THROTTLED_PATHS = frozenset(
    {"/api/v1/auth/sign-in", "/api/v1/auth/refresh", "/api/v1/agents/enrol"}
)


@get("/health", operation_id="health", tags=["health"], guards=[open_endpoint])
async def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


def _throttled(request: Request[Any, Any, Any]) -> bool:
    return request.url.path in THROTTLED_PATHS


def create_asgi(settings: HubSettings, *, migrate: bool = False) -> ASGIApp:
    """The hub as served: online feature lookups answered in front of the Litestar app;
    ``migrate``: bring a database behind the code's schema up to it (after a backup)."""
    services = build_services(settings, migrate=migrate)
    app = cast(ASGIApp, create_app(settings, services))  # ASGI types differ only in naming
    lookup = OnlineLookup(services.identity, services.features, services.engine, services.audit)
    return with_request_id(
        _with_model_in_logs(
            with_access_log(
                with_sane_paths(
                    with_fast_online_lookup(app, lookup),
                    lambda exc: msgspec.json.encode(error_body(exc)),
                ),
                access_log,
            )
        )
    )


_MODEL_PATH = re.compile(r"/api/v1/models/([^/]+)(?:/versions/(\d+))?")


def _with_model_in_logs(app: ASGIApp) -> ASGIApp:
    """A request about one model (or one of its versions) logs which (:mod:`appliance.logs`)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        found = _MODEL_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if found:
            logs.model.set(found[1])
            if found[2]:
                logs.version.set(found[2])
        await app(scope, receive, send)

    return wrapped


def create_app(settings: HubSettings, services: HubServices | None = None) -> Litestar:
    svc = services or build_services(settings)
    lifecycle = HubLifecycle(settings, svc)
    auth = DefineMiddleware(BearerAuthMiddleware, exclude=[f"^{path}$" for path in OPEN_PATHS])
    return Litestar(
        route_handlers=[health, *_key_and_metrics_routes(svc), *_controllers(settings)],
        dependencies=_dependencies(svc),
        middleware=[
            RateLimitConfig(
                rate_limit=("minute", settings.access.sign_in_per_minute),
                check_throttle_handler=_throttled,
            ).middleware,
            auth,
        ],
        exception_handlers={
            ApplianceError: appliance_error_handler,
            # msgspec gives up on a body nested thousands deep with RecursionError
            RecursionError: lambda request, _exc: appliance_error_handler(
                request, nested_too_deeply()
            ),
        },
        request_max_body_size=JSON_BODY_LIMIT,
        openapi_config=OpenAPIConfig(title="Appliance hub", version=__version__, path="/schema"),
        on_startup=[lifecycle.start],
        on_shutdown=[lifecycle.stop],
        state=State({"identity": svc.identity, "services": svc}),
        logging_config=None,
    )


def _controllers(settings: HubSettings) -> list[ControllerRouterHandler]:
    """Each domain's controllers; those that take files under the site's upload limit."""
    return [
        AuthController,
        UserController,
        ModelController,
        AgentController,
        BundleController,
        AuditController,
        FeatureController,
        TufController,
        UpdatesController,
        ReportsController,
        DriftController,
        ExperimentController,
        RolloutController,
        InferenceKeyController,
        TrainingController,
        AgentReleaseController,
        AgentUpgradeController,
        # The endpoints that take files, and only they, take bodies up to the site's
        # upload limit (every other endpoint: JSON_BODY_LIMIT, set on the app).
        Router(
            "/",
            route_handlers=[
                ModelUploadController,
                FeatureUploadController,
                TrainingUploadController,
                AgentReleaseUploadController,
            ],
            request_max_body_size=settings.max_upload_mb * 1024 * 1024,
        ),
    ]


def _key_and_metrics_routes(svc: HubServices) -> list[HTTPRouteHandler]:
    """The hub's signing key, for those signed in, and its Prometheus metrics."""
    signing_pem = public_pem(svc.key.public).decode()
    hub_metrics = HubMetrics(svc.engine)

    @get(
        "/api/v1/keys/signing",
        operation_id="signingKey",
        tags=["keys"],
        guards=[requires(*Permission)],
        media_type="application/x-pem-file",
    )
    async def signing_key() -> Response[str]:
        """The public key bundles and audit checkpoints are signed with; pin it out of band."""
        return Response(signing_pem, media_type="application/x-pem-file")

    @get(
        "/metrics",
        operation_id="metrics",
        tags=["health"],
        guards=[open_endpoint],
        media_type="text/plain; version=0.0.4",
        sync_to_thread=True,
    )
    def metrics_endpoint() -> Response[bytes]:
        """Prometheus text format: fleet health, drift alerts, publications, audit."""
        return Response(hub_metrics.render(), media_type="text/plain; version=0.0.4")

    return [signing_key, metrics_endpoint]


def _dependencies(svc: HubServices) -> dict[str, Provide]:
    """The services controllers name as parameters, by name."""
    audit_reader = AuditReader(svc.engine, svc.audit, svc.key.public)
    provided: dict[str, object] = {
        "registry": svc.registry,
        "fleet": svc.fleet,
        "identity": svc.identity,
        "enrolment": svc.enrolment,
        "audit": audit_reader,
        "features": svc.features,
        "updates": svc.updates,
        "monitoring": svc.monitoring,
        "experiments": svc.experiments,
        "rollouts": svc.rollouts,
        "training": svc.training,
        "schedules": svc.schedules,
        "inference_keys": svc.inference_keys,
        "agent_releases": svc.agent_releases,
        "agent_upgrades": svc.agent_upgrades,
    }
    return {
        name: Provide(_constant(value), sync_to_thread=False) for name, value in provided.items()
    }


def _constant(value: object) -> Callable[[], object]:
    def provide() -> object:
        return value

    return provide
