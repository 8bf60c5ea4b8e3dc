"""Rollouts over HTTP: start one (approvers), watch it, pause, resume, promote, abort."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post

from appliance.wire.releases import RolloutInfo
from hub.auth.guards import principal_of, requires
from hub.auth.roles import Permission as P
from hub.rollouts.service import NewRollout, RolloutService


class RolloutController(Controller):
    path = "/api/v1/rollouts"
    tags = ["rollouts"]

    @post(
        "/", operation_id="startRollout", guards=[requires(P.MODELS_APPROVE)], sync_to_thread=True
    )
    def start(
        self, data: NewRollout, rollouts: RolloutService, request: Request[Any, Any, Any]
    ) -> RolloutInfo:
        """Take a staging version to a group ring by ring; it reaches production at the end."""
        return rollouts.create(data, principal_of(request))

    @get("/", operation_id="listRollouts", guards=[requires(P.MODELS_READ)], sync_to_thread=True)
    def list_all(self, rollouts: RolloutService) -> list[RolloutInfo]:
        return rollouts.list()

    @get(
        "/{rollout_id:int}",
        operation_id="getRollout",
        guards=[requires(P.MODELS_READ)],
        sync_to_thread=True,
    )
    def one(self, rollout_id: int, rollouts: RolloutService) -> RolloutInfo:
        return rollouts.get(rollout_id)

    @post(
        "/{rollout_id:int}/{action:str}",
        operation_id="actOnRollout",
        guards=[requires(P.MODELS_APPROVE)],
        status_code=200,
        sync_to_thread=True,
    )
    def act(
        self,
        rollout_id: int,
        action: str,
        rollouts: RolloutService,
        request: Request[Any, Any, Any],
    ) -> RolloutInfo:
        """``pause``, ``resume``, ``promote`` (end the soak now) or ``abort`` (roll back)."""
        return rollouts.act(rollout_id, action, principal_of(request))
