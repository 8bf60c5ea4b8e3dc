"""Which A/B outcomes an experiment takes, one at a time (agent) and summed (hub)."""

from __future__ import annotations

import pytest

from appliance.errors import InvalidInputError
from appliance.outcomes import MAX_OUTCOME, OutcomeRule


def test_a_rate_takes_0_or_1_and_has_no_bounds_to_set():
    rule = OutcomeRule.checked("rate", None, None)
    assert rule.refusal(1.0) is None and rule.refusal(0.0) is None
    assert "0 or 1" in (rule.refusal(0.5) or "")
    with pytest.raises(InvalidInputError, match="0 or 1"):
        OutcomeRule.checked("rate", 0.0, 10.0)


def test_a_mean_takes_finite_outcomes_within_its_bounds_only():
    basket = OutcomeRule.checked("mean", 0.0, 500.0)
    assert basket.refusal(0.0) is None and basket.refusal(500.0) is None
    for bad in (-1e6, -0.01, 500.5, 1e308, float("nan"), float("inf")):
        assert "within 0 … 500" in (basket.refusal(bad) or ""), bad
    default = OutcomeRule.checked("mean", None, None)
    assert (default.low, default.high) == (-MAX_OUTCOME, MAX_OUTCOME)


@pytest.mark.parametrize(
    "low, high",
    [(5.0, 5.0), (10.0, 1.0), (float("nan"), 1.0), (0.0, float("inf")), (-1e12, 0.0)],
)
def test_bounds_that_make_no_sense_are_refused(low, high):
    with pytest.raises(InvalidInputError, match="min < max"):
        OutcomeRule.checked("mean", low, high)


def test_a_summary_no_allowed_outcomes_add_up_to_is_refused():
    """Issue 14, finding 6: ``-1e6`` outcomes moved both means to about -750,000; an
    agent's key must not be able to send such a sum either."""
    basket = OutcomeRule.of("mean", 0.0, 500.0)
    assert basket.summary_refusal(10, 2500.0, 10 * 250.0**2) is None
    assert basket.summary_refusal(10, 5000.0, 10 * 500.0**2) is None  # at the edge
    assert "total" in (basket.summary_refusal(10, -1e6, 1e12) or "")
    assert "total" in (basket.summary_refusal(10, 5001.0, 1e6) or "")
    assert "total_sq" in (basket.summary_refusal(10, 2500.0, 1e12) or "")
    rate = OutcomeRule.of("rate")
    assert rate.summary_refusal(100, 37.0, 37.0) is None
    assert "total" in (rate.summary_refusal(100, 137.0, 137.0) or "")
