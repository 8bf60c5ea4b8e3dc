"""The hub's Litestar application factory."""

from __future__ import annotations

from dataclasses import dataclass

from litestar import Litestar, get
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.response import Response
from sqlalchemy.engine import Engine

from appliance import __version__
from appliance.errors import ApplianceError
from appliance.keys import init_keypair, keys_dir, public_pem
from appliance.settings import HubSettings
from hub.artifacts import ArtifactStore
from hub.db import create_schema, make_engine
from hub.errors_http import appliance_error_handler
from hub.fleet.controllers import AgentController
from hub.fleet.service import FleetService
from hub.registry.controllers import ModelController
from hub.registry.service import RegistryService


@dataclass(frozen=True)
class HubServices:
    engine: Engine
    registry: RegistryService
    fleet: FleetService


def build_services(settings: HubSettings) -> HubServices:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    create_schema(engine)
    key = init_keypair(keys_dir(settings.data_dir))
    registry = RegistryService(engine, ArtifactStore(settings.data_dir / "artifacts"), key)
    return HubServices(engine, registry, FleetService(engine, registry))


@get("/health", operation_id="health", tags=["health"])
async def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


def create_app(settings: HubSettings, services: HubServices | None = None) -> Litestar:
    svc = services or build_services(settings)
    signing_pem = public_pem(svc.registry.key.public).decode()

    @get(
        "/api/v1/keys/signing",
        operation_id="signingKey",
        tags=["keys"],
        media_type="application/x-pem-file",
    )
    async def signing_key() -> Response[str]:
        """The public key bundles are signed with; pin it on agents out of band."""
        return Response(signing_pem, media_type="application/x-pem-file")

    return Litestar(
        route_handlers=[health, signing_key, ModelController, AgentController],
        dependencies={
            "registry": Provide(lambda: svc.registry, sync_to_thread=False),
            "fleet": Provide(lambda: svc.fleet, sync_to_thread=False),
        },
        exception_handlers={ApplianceError: appliance_error_handler},
        request_max_body_size=settings.max_upload_mb * 1024 * 1024,
        openapi_config=OpenAPIConfig(title="Appliance hub", version=__version__, path="/schema"),
        on_shutdown=[svc.engine.dispose],
        logging_config=None,
    )
