"""HTTP endpoints of the feature store (``/api/v1/features``)."""

from __future__ import annotations

import io
import json
from typing import Any

import msgspec
import pyarrow.parquet as pq
from litestar import Controller, Request, get, post
from litestar.response import Response

from appliance.errors import InvalidInputError
from appliance.wire.features import (
    DefineResult,
    EntityInfo,
    FeatureDefinitions,
    FeatureViewInfo,
    IngestResult,
    MaterializeResult,
    OnlineRequest,
    OnlineResponse,
)
from hub.auth.guards import client_address, principal_of, requires
from hub.auth.roles import Permission
from hub.features.service import FeatureStore
from hub.multipart import Multipart, filename, text, upload_bytes
from hub.pagination import After, Limit, RecordId

P = Permission
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"


class FeatureController(Controller):
    path = "/api/v1/features"
    tags = ["features"]

    @post(
        "/definitions",
        operation_id="defineFeatures",
        guards=[requires(P.FEATURES_WRITE)],
        status_code=200,
        sync_to_thread=True,
    )
    def define(
        self, data: FeatureDefinitions, features: FeatureStore, request: Request[Any, Any, Any]
    ) -> DefineResult:
        """Create or update entities and feature views; unchanged ones are left alone."""
        return features.define(data, actor=principal_of(request).actor)

    @get(
        "/entities",
        operation_id="listFeatureEntities",
        guards=[requires(P.FEATURES_READ)],
        sync_to_thread=True,
    )
    def list_entities(
        self, features: FeatureStore, after: str = "", limit: Limit = 100
    ) -> list[EntityInfo]:
        return features.list_entities(after=after, limit=limit)

    @get(
        "/views",
        operation_id="listFeatureViews",
        guards=[requires(P.FEATURES_READ)],
        sync_to_thread=True,
    )
    def list_views(
        self, features: FeatureStore, after: str = "", limit: Limit = 100
    ) -> list[FeatureViewInfo]:
        return features.list_views(after=after, limit=limit)

    @get(
        "/views/{name:str}",
        operation_id="getFeatureView",
        guards=[requires(P.FEATURES_READ)],
        sync_to_thread=True,
    )
    def get_view(
        self, name: str, features: FeatureStore, version: int | None = None
    ) -> FeatureViewInfo:
        return features.get_view(name, version)

    @get(
        "/views/{name:str}/snapshots",
        operation_id="listFeatureSnapshots",
        guards=[requires(P.FEATURES_READ)],
        sync_to_thread=True,
    )
    def list_snapshots(
        self,
        name: str,
        features: FeatureStore,
        version: RecordId = None,
        after: After = 0,
        limit: Limit = 100,
    ) -> list[IngestResult]:
        return features.list_snapshots(name, version=version, after=after, limit=limit)

    @post(
        "/views/{name:str}/materialize",
        operation_id="materializeFeatures",
        guards=[requires(P.FEATURES_WRITE)],
        status_code=200,
        sync_to_thread=True,
    )
    def materialize(
        self, name: str, features: FeatureStore, request: Request[Any, Any, Any]
    ) -> MaterializeResult:
        return features.materialize(name, actor=principal_of(request).actor)

    @post(
        "/online",
        operation_id="getOnlineFeatures",
        guards=[requires(P.FEATURES_READ)],
        status_code=200,
        sync_to_thread=False,
    )
    def online(
        self, data: OnlineRequest, features: FeatureStore, request: Request[Any, Any, Any]
    ) -> OnlineResponse:
        """The latest values per key: ``ok``, ``stale`` (with its age) or ``missing``.

        In memory, no I/O: it runs on the event loop.
        """
        if len(data.keys) > 1000:
            raise InvalidInputError("keys: at most 1000 keys per request")
        return features.lookup(
            data.view, data.keys, zone=data.zone, actor=principal_of(request).actor
        )


class FeatureUploadController(Controller):
    """Data files in (ingest) and training sets out of them: mounted with the site's upload
    limit (``APPLIANCE_MAX_UPLOAD_MB``), where every other endpoint takes JSON-sized bodies."""

    path = "/api/v1/features"
    tags = ["features"]

    @post(
        "/views/{name:str}/ingest",
        operation_id="ingestFeatures",
        guards=[requires(P.FEATURES_WRITE)],
        status_code=201,
        sync_to_thread=True,
    )
    def ingest(
        self,
        name: str,
        features: FeatureStore,
        data: Multipart,
        request: Request[Any, Any, Any],
    ) -> IngestResult:
        """Multipart: ``file`` (CSV with a header line, or Parquet), optional ``version``.

        All rows are stored or none: a refusal (422) names row, column and reason.
        """
        content = upload_bytes(data, "file", required=True)
        assert content is not None
        version = text(data, "version")
        if version is not None and not version.isdigit():
            raise InvalidInputError(f"version: {version!r} is not a version number")
        return features.ingest(
            name,
            content,
            actor=principal_of(request).actor,
            version=int(version) if version else None,
            source=filename(data, "file"),
        )

    @post(
        "/training-sets",
        operation_id="buildTrainingSet",
        guards=[requires(P.FEATURES_READ)],
        status_code=200,
        sync_to_thread=True,
    )
    def training_set(
        self, features: FeatureStore, data: Multipart, request: Request[Any, Any, Any]
    ) -> Response[bytes]:
        """Multipart: ``events`` (CSV/Parquet: join keys, timestamp, labels), ``views``
        (JSON list of ``name`` or ``name:version``), ``zone`` (the requester's) and
        optional ``timestamp_column``. Answers Parquet; ``X-Feature-Snapshots`` lists
        the snapshots read (JSON), for lineage.
        """
        events = upload_bytes(data, "events", required=True)
        assert events is not None
        try:
            views = json.loads(text(data, "views") or "[]")
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"views: not valid JSON ({exc})") from exc
        if not isinstance(views, list) or not all(isinstance(v, str) for v in views):
            raise InvalidInputError("views: a JSON list of view names")
        zone = text(data, "zone")
        if not zone:
            raise InvalidInputError("zone: the requester's residency zone is required")
        result = features.training_set(
            events,
            views,
            zone=zone,
            actor=principal_of(request).actor,
            timestamp_column=text(data, "timestamp_column") or "event_timestamp",
            source=client_address(request),
        )
        buffer = io.BytesIO()
        pq.write_table(result.table, buffer, compression="zstd")
        return Response(
            buffer.getvalue(),
            media_type=PARQUET_MEDIA_TYPE,
            headers={"X-Feature-Snapshots": msgspec.json.encode(result.snapshots).decode()},
        )
