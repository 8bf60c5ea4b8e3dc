"""Issue 20, item 1: the agents' default drift backend (scipy.stats) gives the p-values,
statistics and verdicts that alibi-detect's KSDrift, ChiSquareDrift and TabularDrift give
on the same reference and windows, so a site can leave alibi-detect (and its licence) out
without its alarms changing."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from agent.drift.detectors import AlibiDetector, ScipyDetector, new_detector

RNG = np.random.default_rng(11)
CONTINUOUS = load_breast_cancer().data.astype(np.float32)
CATEGORIES = RNG.integers(0, 4, (400, 3)).astype(np.float32)
MIXED = np.hstack([RNG.standard_normal((400, 2)).astype(np.float32) * 3 + 1, CATEGORIES])


def _windows(reference: np.ndarray) -> list[np.ndarray]:
    """Windows like the reference, shifted, with a category the reference never saw, all in
    one category, and small."""
    rng = np.random.default_rng(5)
    like = reference[rng.choice(len(reference), 200)]
    shifted = like + 0.4 * reference.std(axis=0)
    unseen = like.copy()
    unseen[:40, -1] = 9
    one = like.copy()
    one[:, -1] = 0
    return [like, shifted, unseen, one, like[:7], reference[:2]]


@pytest.mark.parametrize(
    ("reference", "method"),
    [(CONTINUOUS, "ks"), (CATEGORIES, "chi2"), (MIXED, "tabular"), (CONTINUOUS[:, :1], "ks")],
    ids=["continuous", "categorical", "mixed", "one-feature"],
)
@pytest.mark.parametrize("p_value", [0.05, 0.01])
def test_scipy_and_alibi_detect_agree_on_every_window(
    reference: np.ndarray, method: str, p_value: float
) -> None:
    ours = ScipyDetector(reference, p_value=p_value)
    theirs = AlibiDetector(reference, p_value=p_value)
    assert ours.method == theirs.method == method
    verdicts = []
    for window in _windows(reference):
        a, b = ours.test(window), theirs.test(window)
        np.testing.assert_allclose(a.p_values, b.p_values, rtol=0, atol=1e-9)
        np.testing.assert_allclose(a.distances, b.distances, rtol=0, atol=1e-9)
        assert a.threshold == pytest.approx(b.threshold, abs=1e-12)
        assert a.drifted == b.drifted
        verdicts.append(a.drifted)
    assert verdicts[0] is False and verdicts[1] is True  # a comparison that can tell


def test_the_backend_is_a_setting_and_an_unknown_one_is_refused() -> None:
    assert isinstance(new_detector(MIXED), ScipyDetector)
    assert isinstance(new_detector(MIXED, backend="alibi"), AlibiDetector)
    with pytest.raises(ValueError, match="scipy, alibi"):
        new_detector(MIXED, backend="evidently")
