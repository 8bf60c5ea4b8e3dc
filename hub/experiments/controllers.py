"""A/B experiments over HTTP: define, list, read the verdict, stop."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post

from appliance.wire.releases import ExperimentInfo
from hub.auth.guards import principal_of, requires
from hub.auth.roles import Permission as P
from hub.experiments.service import ExperimentService, NewExperiment


class ExperimentController(Controller):
    path = "/api/v1/experiments"
    tags = ["experiments"]

    @post(
        "/", operation_id="createExperiment", guards=[requires(P.MODELS_STAGE)], sync_to_thread=True
    )
    def create(
        self, data: NewExperiment, experiments: ExperimentService, request: Request[Any, Any, Any]
    ) -> ExperimentInfo:
        return experiments.create(data, principal_of(request))

    @get("/", operation_id="listExperiments", guards=[requires(P.MODELS_READ)], sync_to_thread=True)
    def list_all(self, experiments: ExperimentService) -> list[ExperimentInfo]:
        return experiments.list()

    @get(
        "/{name:str}",
        operation_id="getExperiment",
        guards=[requires(P.MODELS_READ)],
        sync_to_thread=True,
    )
    def one(self, name: str, experiments: ExperimentService) -> ExperimentInfo:
        """Per-variant counts and means, comparisons with confidence intervals, the verdict."""
        return experiments.get(name)

    @post(
        "/{name:str}/stop",
        operation_id="stopExperiment",
        guards=[requires(P.MODELS_STAGE)],
        status_code=200,
        sync_to_thread=True,
    )
    def stop(
        self, name: str, experiments: ExperimentService, request: Request[Any, Any, Any]
    ) -> ExperimentInfo:
        return experiments.stop(name, principal_of(request))

    @post(
        "/{name:str}/promote",
        operation_id="promoteExperimentWinner",
        guards=[requires(P.MODELS_APPROVE)],
        status_code=200,
        sync_to_thread=True,
    )
    def promote(
        self, name: str, experiments: ExperimentService, request: Request[Any, Any, Any]
    ) -> ExperimentInfo:
        """Stop the experiment and approve its winner (a staging version) for production."""
        return experiments.promote_winner(name, principal_of(request))
