"""Which outcomes an A/B experiment takes: one rule for the agent and the hub.

A ``rate`` experiment counts successes: each outcome is 0 or 1. A ``mean``
experiment takes any finite number within the bounds its creator set (by default
±``MAX_OUTCOME``): one huge value would swamp, or squared overflow, a variant's
summary, and a value outside what the measure can be (a negative basket, a
probability of 3) is a client's mistake or an attack, never data. The agent refuses
such an outcome (422); the hub refuses a summary no set of allowed outcomes can add up
to, so an agent's key cannot skew the verdict either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from appliance.errors import InvalidInputError

MAX_OUTCOME: Final = 1e9
"""The widest a ``mean`` experiment's bounds may be, either sign."""
_SLACK: Final = 1e-9
"""Relative room for rounding when a summary is checked against its bounds."""


@dataclass(frozen=True)
class OutcomeRule:
    metric: str
    low: float
    high: float

    @classmethod
    def of(
        cls, metric: str, outcome_min: float | None = None, outcome_max: float | None = None
    ) -> OutcomeRule:
        """The rule of an experiment as recorded: a ``rate`` ignores bounds."""
        if metric == "rate":
            return cls("rate", 0.0, 1.0)
        return cls(
            metric,
            -MAX_OUTCOME if outcome_min is None else outcome_min,
            MAX_OUTCOME if outcome_max is None else outcome_max,
        )

    @classmethod
    def checked(
        cls, metric: str, outcome_min: float | None, outcome_max: float | None
    ) -> OutcomeRule:
        """The rule for a new experiment; :class:`InvalidInputError` for bounds that make
        no sense."""
        if metric == "rate":
            if outcome_min is not None or outcome_max is not None:
                raise InvalidInputError(
                    "outcome_min, outcome_max: a rate experiment's outcomes are 0 or 1",
                    hint="bounds are for metric 'mean'",
                )
            return cls.of(metric)
        rule = cls.of(metric, outcome_min, outcome_max)
        if not -MAX_OUTCOME <= rule.low < rule.high <= MAX_OUTCOME:
            raise InvalidInputError(
                f"outcome_min, outcome_max: need finite numbers with min < max, within "
                f"±{MAX_OUTCOME:g} (got {rule.low:g} … {rule.high:g})"
            )
        return rule

    def refusal(self, outcome: float) -> str | None:
        """Why one outcome is refused, or ``None`` when it is taken."""
        if self.metric == "rate":
            if outcome in (0.0, 1.0):
                return None
            return f"outcome: this experiment counts a rate; send 0 or 1, not {outcome}"
        if math.isfinite(outcome) and self.low <= outcome <= self.high:
            return None
        return f"outcome: {outcome} is not a finite number within {self.low:g} … {self.high:g}"

    def summary_refusal(self, count: int, total: float, total_sq: float) -> str | None:
        """Why a summary of ``count`` outcomes is refused: no outcomes within the bounds
        add up to ``total`` and ``total_sq``."""
        widest = max(abs(self.low), abs(self.high), 1.0)
        slack = _SLACK * count * widest
        if not count * self.low - slack <= total <= count * self.high + slack:
            return (
                f"total: {total:g} is not the sum of {count} outcomes within "
                f"{self.low:g} … {self.high:g}"
            )
        if not 0.0 <= total_sq <= count * widest * widest * (1 + _SLACK):
            return f"total_sq: {total_sq:g} is not the sum of {count} squared outcomes"
        return None
