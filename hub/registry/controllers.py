"""HTTP endpoints of the model registry."""

from __future__ import annotations

import json
from typing import Annotated, Any

from litestar import Controller, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import File

from appliance.errors import InvalidInputError
from appliance.schemas import ModelDetail, ModelSummary, StageChange, VersionInfo
from hub.registry.service import RegistryService


def _upload_bytes(data: dict[str, Any], field: str, *, required: bool) -> bytes | None:
    value = data.get(field)
    if value is None:
        if required:
            raise InvalidInputError(f"{field}: missing file part {field!r} in the multipart form")
        return None
    if not isinstance(value, UploadFile):
        raise InvalidInputError(f"{field}: expected a file part, got a text field")
    content = value.file.read()
    if required and not content:
        raise InvalidInputError(f"{field}: the uploaded file is empty")
    return content


def _metadata(data: dict[str, Any]) -> dict[str, Any]:
    raw = data.get("metadata")
    if raw is None:
        return {}
    if isinstance(raw, UploadFile):
        raw = raw.file.read().decode("utf-8", "replace")
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"metadata: not valid JSON ({exc})") from exc
    if not isinstance(parsed, dict):
        raise InvalidInputError("metadata: must be a JSON object")
    return parsed


class ModelController(Controller):
    path = "/api/v1/models"
    tags = ["models"]

    @get("/", operation_id="listModels", sync_to_thread=True)
    def list_models(self, registry: RegistryService) -> list[ModelSummary]:
        return registry.list_models()

    @get("/{name:str}", operation_id="getModel", sync_to_thread=True)
    def get_model(self, name: str, registry: RegistryService) -> ModelDetail:
        return registry.get_model(name)

    @post("/{name:str}/versions", operation_id="uploadModelVersion", sync_to_thread=True)
    def upload_version(
        self,
        name: str,
        registry: RegistryService,
        data: Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> VersionInfo:
        """Register an ONNX model as the next candidate version.

        Multipart parts: ``model`` (the ONNX file), optional ``reference`` (a
        ``.npy`` sample of training inputs) and optional ``metadata`` (JSON with
        ``metrics`` and ``lineage``).
        """
        onnx_bytes = _upload_bytes(data, "model", required=True)
        assert onnx_bytes is not None
        meta = _metadata(data)
        return registry.register_version(
            name,
            onnx_bytes,
            reference_npy=_upload_bytes(data, "reference", required=False),
            metrics=meta.get("metrics"),
            lineage=meta.get("lineage"),
        )

    @get("/{name:str}/versions/{version:int}", operation_id="getModelVersion", sync_to_thread=True)
    def get_version(self, name: str, version: int, registry: RegistryService) -> VersionInfo:
        return registry.get_version(name, version)

    @post(
        "/{name:str}/versions/{version:int}/stage",
        operation_id="changeModelVersionStage",
        status_code=200,
        sync_to_thread=True,
    )
    def change_stage(
        self, name: str, version: int, data: StageChange, registry: RegistryService
    ) -> VersionInfo:
        return registry.change_stage(name, version, data.stage)

    @get(
        "/{name:str}/versions/{version:int}/bundle",
        operation_id="downloadModelBundle",
        sync_to_thread=True,
    )
    def download_bundle(self, name: str, version: int, registry: RegistryService) -> File:
        path, info = registry.bundle_file(name, version)
        return File(
            path=path,
            filename=f"{name}-{version}.bundle.tar",
            media_type="application/x-tar",
            headers={"X-Bundle-SHA256": info.bundle_sha256},
        )
