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
from appliance.errors import NotFoundError, UnprocessableInputError
from appliance.outcomes import OutcomeRule
from appliance.trust.layout import ExperimentSpec

MAX_REMEMBERED = 100_000
"""Request ids kept for feedback; the oldest are forgotten first …"""
MAX_REMEMBERED_BYTES = 16 << 20
"""… and at most this much memory for them (the v2 codec refuses ids over 128 characters)."""
_ENTRY_BYTES = 200
"""What one remembered id costs besides its characters (dict slot, tuple, strings)."""


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
    outcomes: OutcomeRule


class ExperimentRouter:
    def __init__(self) -> None:
        self._by_model: dict[str, _Live] = {}
        self._requests: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._held_bytes = 0
        self._sums: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()

    def update(self, experiments: dict[str, ExperimentSpec]) -> None:
        """Follow the signed index: start, change or end experiments."""
        live = {}
        for name, spec in sorted(experiments.items()):
            variants = [(v.name, v.weight) for v in spec.variants]
            live[spec.model] = _Live(
                name,
                CohortPicker(spec.salt, variants),
                {v.name: v.version for v in spec.variants},
                OutcomeRule.of(spec.metric, spec.outcome_min, spec.outcome_max),
            )
        self._by_model = live
        running = {e.name for e in live.values()}
        with self._lock:  # a stopped experiment's request ids are forgotten, memory freed
            for request_id, (experiment, _variant) in list(self._requests.items()):
                if experiment not in running:
                    self._forget(request_id)

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
            if request_id in self._requests:
                self._forget(request_id)
            self._requests[request_id] = (routing.experiment, routing.variant)
            self._held_bytes += _cost(request_id)
            while self._requests and (
                len(self._requests) > MAX_REMEMBERED or self._held_bytes > MAX_REMEMBERED_BYTES
            ):
                self._forget(next(iter(self._requests)))

    def remembered(self) -> tuple[int, int]:
        """(request ids kept for feedback, bytes they are counted at)."""
        with self._lock:
            return len(self._requests), self._held_bytes

    def _forget(self, request_id: str) -> None:
        if self._requests.pop(request_id, None) is not None:
            self._held_bytes -= _cost(request_id)

    def feedback(self, request_id: str, outcome: float) -> tuple[str, str]:
        """Count an outcome for the variant that answered ``request_id`` (once).

        The outcome must suit the experiment (:mod:`appliance.outcomes`): 0 or 1 for a
        ``rate``, a finite number within its bounds for a ``mean`` (422 otherwise; the id
        stays).
        """
        with self._lock:
            known = self._requests.get(request_id)
            if known is None:
                raise NotFoundError(
                    f"no experiment request {request_id!r} on this agent",
                    hint="feedback must reach the agent that answered, with the id it returned",
                )
            self._check_outcome(known[0], outcome)  # a refused outcome keeps the id
            self._forget(request_id)
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

    def _check_outcome(self, experiment: str, outcome: float) -> None:
        rule = next(
            (e.outcomes for e in self._by_model.values() if e.name == experiment),
            OutcomeRule.of("rate"),
        )
        refusal = rule.refusal(outcome)
        if refusal:
            raise UnprocessableInputError(f"{refusal} (experiment {experiment!r})")


def _cost(request_id: str) -> int:
    return len(request_id.encode()) + _ENTRY_BYTES
