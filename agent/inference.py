"""The one inference core both fronts share: HTTP (:mod:`agent.v2_codec`) and gRPC
(:mod:`agent.grpc_front`) only translate their wire formats to and from it.

It routes a request that names no version to its A/B variant when its model is under
experiment, checks the request against the model's signature, runs it, counts and times
it, feeds probation and keeps its rows for the drift window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent import v2_codec
from agent.batching import Batchers
from agent.drift.monitor import RowRecorder
from agent.experiments import ExperimentRouter
from agent.metrics import AgentMetrics
from agent.repository import LoadedModel, ModelRepository
from appliance.errors import ApplianceError, NotFoundError


@dataclass(frozen=True)
class Inferred:
    model: LoadedModel
    request: v2_codec.InferRequest
    results: dict[str, np.ndarray]
    names: list[str]
    """The outputs to send, in order."""
    request_id: str | None
    parameters: dict[str, Any] | None
    """``experiment``, ``variant`` and ``sticky`` when an experiment chose the version."""


@dataclass(frozen=True)
class InferenceCore:
    repository: ModelRepository
    metrics: AgentMetrics | None = None
    drift: RowRecorder | None = None
    router: ExperimentRouter | None = None
    allow_non_finite: frozenset[str] = frozenset()
    batchers: Batchers = field(default_factory=lambda: Batchers({}))

    def run(
        self,
        name: str,
        version: int | None,
        decode: Callable[[], v2_codec.InferRequest],
        subject: str | None = None,
    ) -> Inferred:
        """Run one request; ``decode`` turns the wire format into it (its refusals count as
        rejected requests of the model)."""
        model = self.repository.get(name, version)  # held for the request: swaps can't tear it
        started = time.perf_counter()
        routing = None
        try:
            request = decode()
            if version is None and self.router is not None:
                if subject is None and request.parameters:
                    subject = _text(request.parameters.get("subject_id"))
                routing = self.router.route(name, subject)
                if routing is not None:
                    try:
                        model = self.repository.get(name, routing.version)
                    except NotFoundError:  # the variant is not loaded here yet: the default
                        routing = None  # answers, and no outcome is counted for a variant
            feed = v2_codec.to_feed(
                request, model.manifest, allow_non_finite=model.name in self.allow_non_finite
            )
            names = v2_codec.requested_outputs(request, model.manifest)
        except ApplianceError:
            if self.metrics is not None:
                self.metrics.observe(model, 0.0, "rejected")
            raise
        probation = model.probation
        try:
            results = self.batchers.infer(model, feed)
        except Exception as exc:
            if probation is not None:
                probation.record(False, f"{exc.__class__.__name__}: {exc}")
            if self.metrics is not None:
                self.metrics.observe(model, 0.0, "error")
            raise
        if probation is not None:
            probation.record(True)
        request_id, parameters = request.id, None
        if routing is not None and self.router is not None:
            request_id = request_id or self.router.new_request_id()
            self.router.remember(request_id, routing)
            parameters = {
                "experiment": routing.experiment,
                "variant": routing.variant,
                "sticky": routing.sticky,
            }
        if self.metrics is not None:
            variant = routing.variant if routing is not None else ""
            self.metrics.observe(model, time.perf_counter() - started, "ok", variant)
        if self.drift is not None:
            self.drift.record(model, feed)
        return Inferred(model, request, results, names, request_id, parameters)


def _text(value: object) -> str | None:
    return str(value) if isinstance(value, str | int) and str(value) else None
