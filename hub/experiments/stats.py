"""The statistics that decide an A/B experiment, from per-variant summaries.

Agents report counts and sums per variant, never individual outcomes, so every
test here works from summaries:

* rates (conversion, accuracy): two-proportion z-test, pooled standard error for
  the test and unpooled for the confidence interval of the difference;
* continuous metrics (revenue, latency): Welch's t-test from count, sum and sum
  of squares, with Welch-Satterthwaite degrees of freedom;
* sample-ratio mismatch: chi-square of observed counts against the configured
  weights; a mismatch (p < 0.001) means the split itself is broken and no verdict
  is given;
* no verdict before every variant has ``min_samples``; with more than two
  variants each is compared with the first (the control), Bonferroni-corrected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Literal, cast

from appliance.wire.releases import Comparison

SRM_ALPHA = 0.001


def _scipy_stats() -> ModuleType:
    from scipy import stats  # lazy: scipy.stats takes 0.6 s of the hub's 1.8 s start

    return cast(ModuleType, stats)


@dataclass(frozen=True)
class VariantSummary:
    name: str
    count: int
    total: float
    """Sum of outcomes (successes for a rate)."""
    total_sq: float = 0.0
    """Sum of squared outcomes (continuous metrics)."""

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    @property
    def variance(self) -> float:
        if self.count < 2:
            return 0.0
        return max(0.0, (self.total_sq - self.count * self.mean**2) / (self.count - 1))


@dataclass(frozen=True)
class Verdict:
    status: Literal["collecting", "sample_ratio_mismatch", "no_difference", "winner"]
    winner: str | None
    comparisons: list[Comparison]
    srm_p_value: float
    detail: str


def two_proportions(control: VariantSummary, variant: VariantSummary, alpha: float) -> Comparison:
    p1, p2 = control.mean, variant.mean
    n1, n2 = control.count, variant.count
    pooled = (control.total + variant.total) / (n1 + n2)
    se_test = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (p2 - p1) / se_test if se_test > 0 else 0.0
    sp = _scipy_stats()
    p_value = float(2 * sp.norm.sf(abs(z)))
    se_diff = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    margin = float(sp.norm.ppf(1 - alpha / 2)) * se_diff
    diff = p2 - p1
    return Comparison(
        control.name, variant.name, diff, diff - margin, diff + margin, p_value, p_value < alpha
    )


def welch(control: VariantSummary, variant: VariantSummary, alpha: float) -> Comparison:
    v1, v2 = control.variance / control.count, variant.variance / variant.count
    se = math.sqrt(v1 + v2)
    diff = variant.mean - control.mean
    if se == 0:
        return Comparison(control.name, variant.name, diff, diff, diff, 1.0, False)
    t = diff / se
    df = (v1 + v2) ** 2 / (v1**2 / max(control.count - 1, 1) + v2**2 / max(variant.count - 1, 1))
    sp = _scipy_stats()
    p_value = float(2 * sp.t.sf(abs(t), df))
    margin = float(sp.t.ppf(1 - alpha / 2, df)) * se
    return Comparison(
        control.name, variant.name, diff, diff - margin, diff + margin, p_value, p_value < alpha
    )


def sample_ratio_mismatch(counts: Sequence[int], weights: Sequence[float]) -> float:
    """p-value of the observed split against the configured weights."""
    total = sum(counts)
    if total == 0:
        return 1.0
    expected = [total * w / sum(weights) for w in weights]
    return float(_scipy_stats().chisquare(list(counts), expected).pvalue)


def decide(
    summaries: Sequence[VariantSummary],
    weights: Sequence[float],
    *,
    metric: Literal["rate", "mean"],
    min_samples: int,
    alpha: float = 0.05,
    higher_is_better: bool = True,
) -> Verdict:
    srm = sample_ratio_mismatch([s.count for s in summaries], weights)
    short = [s.name for s in summaries if s.count < min_samples]
    if short:
        return Verdict(
            "collecting", None, [], srm, f"waiting for {min_samples} samples in {', '.join(short)}"
        )
    if srm < SRM_ALPHA:
        return Verdict(
            "sample_ratio_mismatch",
            None,
            [],
            srm,
            f"observed split differs from the weights (chi-square p={srm:.2g}): fix the "
            "assignment before reading results",
        )
    control, *others = summaries
    corrected = alpha / max(len(others), 1)
    test = two_proportions if metric == "rate" else welch
    comparisons = [test(control, other, corrected) for other in others]
    sign = 1 if higher_is_better else -1
    better = [c for c in comparisons if c.significant and sign * c.difference > 0]
    worse = [c for c in comparisons if c.significant and sign * c.difference < 0]
    if better:
        best = max(better, key=lambda c: sign * c.difference)
        return Verdict(
            "winner",
            best.variant,
            comparisons,
            srm,
            f"{best.variant} beats {control.name} (p={best.p_value:.2g})",
        )
    if worse and len(worse) == len(comparisons):
        return Verdict(
            "winner", control.name, comparisons, srm, f"{control.name} beats every other variant"
        )
    return Verdict(
        "no_difference",
        None,
        comparisons,
        srm,
        "no variant differs from the control at this significance",
    )
