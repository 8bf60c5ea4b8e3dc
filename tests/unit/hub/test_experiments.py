"""A/B statistics and sticky cohorts: known effects found, no effect not declared."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sp

from agent.cohorts import CohortPicker
from hub.experiments.stats import VariantSummary, decide, sample_ratio_mismatch, welch

WEIGHTS = [("control", 0.5), ("challenger", 0.3), ("wild", 0.2)]


def test_100k_subjects_split_as_the_weights_say():
    picker = CohortPicker("exp-salt-1", WEIGHTS)
    counts = {name: 0 for name, _ in WEIGHTS}
    for i in range(100_000):
        counts[picker.assign(f"subject-{i}").variant] += 1
    observed = [counts[name] for name, _ in WEIGHTS]
    assert sample_ratio_mismatch(observed, [w for _, w in WEIGHTS]) > 0.001
    for (name, weight), seen in zip(WEIGHTS, observed, strict=True):
        assert abs(seen / 100_000 - weight) < 0.01, name


def test_the_same_subject_gets_the_same_variant_on_every_agent():
    agent_a, agent_b = CohortPicker("s", WEIGHTS), CohortPicker("s", WEIGHTS)
    subjects = [f"customer-{i}" for i in range(2000)]
    assert [agent_a.assign(s) for s in subjects] == [agent_b.assign(s) for s in subjects]
    other_experiment = CohortPicker("another salt", WEIGHTS)
    same = sum(agent_a.assign(s) == other_experiment.assign(s) for s in subjects) / 2000
    assert same < 0.5  # a new salt reshuffles: ~ 0.5² + 0.3² + 0.2² = 0.38


def test_a_request_without_a_subject_gets_a_random_marked_variant():
    assignment = CohortPicker("s", WEIGHTS).assign(None)
    assert assignment.variant in {n for n, _ in WEIGHTS} and assignment.sticky is False


def _rates(rng, n, rate_a, rate_b):
    a, b = rng.binomial(n, rate_a), rng.binomial(n, rate_b)
    return [VariantSummary("a", n, float(a)), VariantSummary("b", n, float(b))]


def test_a_real_lift_in_a_rate_is_found():
    verdict = decide(
        _rates(np.random.default_rng(1), 20_000, 0.10, 0.12),
        [0.5, 0.5],
        metric="rate",
        min_samples=1000,
    )
    assert verdict.status == "winner" and verdict.winner == "b"
    (comparison,) = verdict.comparisons
    assert comparison.ci_low < 0.02 < comparison.ci_high and comparison.ci_low > 0


def test_no_effect_is_rarely_declared():
    rng = np.random.default_rng(2)
    declared = sum(
        decide(_rates(rng, 5000, 0.1, 0.1), [0.5, 0.5], metric="rate", min_samples=1000).status
        == "winner"
        for _ in range(400)
    )
    assert declared / 400 <= 0.07  # alpha = 0.05, plus sampling noise over 400 experiments


def _summary(name, values):
    return VariantSummary(name, len(values), float(values.sum()), float((values**2).sum()))


def test_welch_matches_scipy_on_raw_data_and_finds_a_real_shift():
    rng = np.random.default_rng(3)
    a, b = rng.normal(10, 3, 5000), rng.normal(10.3, 4, 4000)
    mine = welch(_summary("a", a), _summary("b", b), 0.05)
    reference = sp.ttest_ind(b, a, equal_var=False)
    assert mine.p_value == pytest.approx(reference.pvalue, rel=1e-6)
    verdict = decide([_summary("a", a), _summary("b", b)], [5, 4], metric="mean", min_samples=100)
    assert verdict.winner == "b"
    same = decide(
        [_summary("a", a), _summary("b", rng.normal(10, 3, 4000))],
        [5, 4],
        metric="mean",
        min_samples=100,
    )
    assert same.status == "no_difference"


def test_no_verdict_before_the_minimum_sample_size():
    verdict = decide(
        _rates(np.random.default_rng(4), 500, 0.1, 0.3),
        [0.5, 0.5],
        metric="rate",
        min_samples=1000,
    )
    assert verdict.status == "collecting" and verdict.winner is None


def test_a_broken_split_gives_no_verdict():
    summaries = [VariantSummary("a", 5000, 500.0), VariantSummary("b", 5600, 800.0)]
    verdict = decide(summaries, [0.5, 0.5], metric="rate", min_samples=1000)
    assert verdict.status == "sample_ratio_mismatch" and verdict.winner is None


def test_lower_is_better_metrics_pick_the_lower_mean():
    rng = np.random.default_rng(5)
    slow, fast = rng.normal(120, 20, 3000), rng.normal(110, 20, 3000)
    verdict = decide(
        [_summary("slow", slow), _summary("fast", fast)],
        [1, 1],
        metric="mean",
        min_samples=100,
        higher_is_better=False,
    )
    assert verdict.winner == "fast"
