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
from dataclasses import dataclass

from agent.cohorts import CohortPicker
from agent.outbox import Outbox
from agent.request_ledger import MemoryLedger, RequestLedger
from appliance.errors import NotFoundError, UnprocessableInputError
from appliance.outcomes import OutcomeRule
from appliance.trust.layout import ExperimentSpec


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
    def __init__(self, ledger: RequestLedger | None = None) -> None:
        self._by_model: dict[str, _Live] = {}
        self.ledger: RequestLedger = ledger or MemoryLedger()
        """Which variant answered each request id (shared by ``--workers`` processes)."""
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
        # a stopped experiment's request ids are forgotten, memory freed
        self.ledger.keep_only({e.name for e in live.values()})

    def route(self, model: str, subject: str | None) -> Routing | None:
        live = self._by_model.get(model)
        if live is None:
            return None
        assignment = live.picker.assign(subject)
        return Routing(
            live.name, assignment.variant, live.versions[assignment.variant], assignment.sticky
        )

    def remember(self, request_id: str, routing: Routing) -> None:
        self.ledger.remember(request_id, (routing.experiment, routing.variant))

    def remembered(self) -> tuple[int, int]:
        """(request ids kept for feedback, bytes they are counted at)."""
        return self.ledger.size()

    def feedback(self, request_id: str, outcome: float) -> tuple[str, str]:
        """Count an outcome for the variant that answered ``request_id`` (once).

        The outcome must suit the experiment (:mod:`appliance.outcomes`): 0 or 1 for a
        ``rate``, a finite number within its bounds for a ``mean`` (422 otherwise; the id
        stays).
        """
        known = self.ledger.look_up(request_id)
        if known is not None:
            self._check_outcome(known[0], outcome)  # a refused outcome keeps the id
        if known is None or not self.ledger.take(request_id):  # taken: counted already
            raise NotFoundError(
                f"no experiment request {request_id!r} on this agent",
                hint="feedback must reach the agent that answered, with the id it returned",
            )
        with self._lock:
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
