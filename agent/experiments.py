"""A/B experiments on the agent: sticky variant choice and per-variant outcome summaries.

The group's signed index names the running experiments (model, salt, variants
with versions and weights). A request for a model under experiment that names
no version is answered by the variant its subject id hashes to
(:mod:`agent.cohorts`), the same on every agent, online or offline. The
response says which variant and version answered. Outcomes come back through
``POST /v2/models/{name}/feedback`` by request id; each variant's count, sum and
sum of squares go to the hub through the outbox, never single outcomes.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from agent.cohorts import CohortPicker
from agent.outbox import Outbox
from appliance.errors import NotFoundError
from appliance.trust.layout import ExperimentSpec

MAX_REMEMBERED = 100_000
"""Request ids kept for feedback; the oldest are forgotten first."""


@dataclass(frozen=True)
class Routing:
    experiment: str
    variant: str
    version: int
    sticky: bool


@dataclass
class _Live:
    name: str
    picker: CohortPicker
    versions: dict[str, int]


class ExperimentRouter:
    def __init__(self) -> None:
        self._by_model: dict[str, _Live] = {}
        self._requests: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._sums: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()

    def update(self, experiments: dict[str, ExperimentSpec]) -> None:
        """Follow the signed index: start, change or end experiments."""
        live = {}
        for name, spec in sorted(experiments.items()):
            variants = [(v.name, v.weight) for v in spec.variants]
            live[spec.model] = _Live(
                name, CohortPicker(spec.salt, variants), {v.name: v.version for v in spec.variants}
            )
        self._by_model = live

    def route(self, model: str, subject: str | None) -> Routing | None:
        live = self._by_model.get(model)
        if live is None:
            return None
        assignment = live.picker.assign(subject)
        return Routing(
            live.name, assignment.variant, live.versions[assignment.variant], assignment.sticky
        )

    def remember(self, request_id: str, routing: Routing) -> None:
        with self._lock:
            self._requests[request_id] = (routing.experiment, routing.variant)
            while len(self._requests) > MAX_REMEMBERED:
                self._requests.popitem(last=False)

    def feedback(self, request_id: str, outcome: float) -> tuple[str, str]:
        """Count an outcome for the variant that answered ``request_id`` (once)."""
        with self._lock:
            known = self._requests.pop(request_id, None)
            if known is None:
                raise NotFoundError(
                    f"no experiment request {request_id!r} on this agent",
                    hint="feedback must reach the agent that answered, with the id it returned",
                )
            sums = self._sums.setdefault(known, [0, 0.0, 0.0])
            sums[0] += 1
            sums[1] += outcome
            sums[2] += outcome * outcome
        return known

    def flush(self, outbox: Outbox) -> int:
        """Queue each variant's summary since the last flush as an ``ab`` report."""
        with self._lock:
            sums, self._sums = self._sums, {}
        for (experiment, variant), (count, total, total_sq) in sums.items():
            outbox.put(
                "ab",
                {
                    "experiment": experiment,
                    "variant": variant,
                    "count": int(count),
                    "total": total,
                    "total_sq": total_sq,
                },
                key=f"ab-{uuid.uuid4()}",
            )
        return len(sums)

    def new_request_id(self) -> str:
        return uuid.uuid4().hex
