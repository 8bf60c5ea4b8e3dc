"""HTTP endpoints of the model registry."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post

from appliance.wire.registry import ModelDetail, ModelSummary, StageChange, VersionInfo
from hub.auth.guards import principal_of, requires
from hub.auth.roles import Permission
from hub.multipart import Multipart, json_object, upload_bytes, upload_stream
from hub.pagination import Limit
from hub.registry.service import RegistryService

P = Permission


class ModelController(Controller):
    path = "/api/v1/models"
    tags = ["models"]

    @get("/", operation_id="listModels", guards=[requires(P.MODELS_READ)], sync_to_thread=True)
    def list_models(
        self, registry: RegistryService, after: str = "", limit: Limit = 100
    ) -> list[ModelSummary]:
        return registry.list_models(after_name=after, limit=limit)

    @get(
        "/{name:str}",
        operation_id="getModel",
        guards=[requires(P.MODELS_READ)],
        sync_to_thread=True,
    )
    def get_model(self, name: str, registry: RegistryService) -> ModelDetail:
        return registry.get_model(name)

    @get(
        "/{name:str}/versions/{version:int}",
        operation_id="getModelVersion",
        guards=[requires(P.MODELS_READ)],
        sync_to_thread=True,
    )
    def get_version(self, name: str, version: int, registry: RegistryService) -> VersionInfo:
        return registry.get_version(name, version)

    @post(
        "/{name:str}/versions/{version:int}/stage",
        operation_id="changeModelVersionStage",
        guards=[requires(P.MODELS_STAGE, P.MODELS_APPROVE)],
        sync_to_thread=True,
    )
    def change_stage(
        self,
        name: str,
        version: int,
        data: StageChange,
        registry: RegistryService,
        request: Request[Any, Any, Any],
    ) -> Response[VersionInfo]:
        """200 when the stage changed; 202 when an approval was recorded but more are needed."""
        info = registry.change_stage(name, version, data.stage, by=principal_of(request))
        return Response(info, status_code=200 if info.stage == data.stage else 202)

    @post(
        "/{name:str}/versions/{version:int}/exposure",
        operation_id="approveModelVersionExposure",
        guards=[requires(P.MODELS_APPROVE)],
        status_code=200,
        sync_to_thread=True,
    )
    def approve_exposure(
        self,
        name: str,
        version: int,
        registry: RegistryService,
        request: Request[Any, Any, Any],
    ) -> VersionInfo:
        """Let a staging version take live traffic before production (rollout rings, A/B
        variants) once approvers other than its author meet the site's approval count."""
        return registry.approve_exposure(name, version, by=principal_of(request))


class ModelUploadController(Controller):
    """Uploading a model version: mounted with the site's upload limit
    (``APPLIANCE_MAX_UPLOAD_MB``), where every other endpoint takes JSON-sized bodies."""

    path = "/api/v1/models"
    tags = ["models"]

    @post(
        "/{name:str}/versions",
        operation_id="uploadModelVersion",
        guards=[requires(P.MODELS_WRITE)],
        sync_to_thread=True,
    )
    def upload_version(
        self,
        name: str,
        registry: RegistryService,
        data: Multipart,
        request: Request[Any, Any, Any],
    ) -> VersionInfo:
        """Register a model as the next candidate version.

        Multipart parts: ``model`` (an ONNX file or a zip of one with its
        external-data weights, streamed to disk; or a model the hub converts to
        ONNX: scikit-learn saved with skops, a TorchScript module, a torch.export
        program, a zipped MLflow model directory; see :mod:`hub.registry.formats`;
        pickles are refused with 422), optional ``reference`` (a
        ``.npy`` sample of training inputs, for drift), optional ``sample`` (inputs
        the model accepts, ``.npz`` or JSON, for its probes and test vectors: see
        :mod:`hub.registry.samples`) and optional ``metadata`` (JSON with
        ``tolerance`` (``atol``, ``rtol``: how close every runtime must answer),
        ``metrics``, ``lineage`` and ``zones``, the residency zones of the
        training data). The uploader is recorded as the version's author.
        """
        meta = json_object(data, "metadata")
        return registry.register_version(
            name,
            upload_stream(data, "model"),
            reference_npy=upload_bytes(data, "reference", required=False),
            sample=upload_bytes(data, "sample", required=False),
            metrics=meta.get("metrics"),
            lineage=meta.get("lineage"),
            zones=meta.get("zones"),
            tolerance=meta.get("tolerance"),
            actor=principal_of(request).actor,
        )
