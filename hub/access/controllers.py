"""Inference keys over HTTP: issue (the key is shown once), list, revoke (admins)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post

from appliance.wire.fleet import InferenceKeyInfo, NewInferenceKey
from hub.access.service import InferenceKeys
from hub.auth.guards import principal_of, requires
from hub.auth.roles import Permission as P
from hub.pagination import After, Limit


class InferenceKeyController(Controller):
    path = "/api/v1/inference-keys"
    tags = ["inference keys"]
    guards = [requires(P.INFERENCE_KEYS)]

    @post("/", operation_id="createInferenceKey", sync_to_thread=True)
    def create(
        self, data: NewInferenceKey, inference_keys: InferenceKeys, request: Request[Any, Any, Any]
    ) -> InferenceKeyInfo:
        """Issue a key for one group's client applications; the answer holds it, once."""
        return inference_keys.create(data, principal_of(request))

    @get("/", operation_id="listInferenceKeys", sync_to_thread=True)
    def list_all(
        self, inference_keys: InferenceKeys, after: After = 0, limit: Limit = 100
    ) -> list[InferenceKeyInfo]:
        return inference_keys.list(after_id=after, limit=limit)

    @post(
        "/{key_id:int}/revoke",
        operation_id="revokeInferenceKey",
        status_code=200,
        sync_to_thread=True,
    )
    def revoke(
        self, key_id: int, inference_keys: InferenceKeys, request: Request[Any, Any, Any]
    ) -> InferenceKeyInfo:
        return inference_keys.revoke(key_id, principal_of(request))
