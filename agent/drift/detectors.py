"""The drift test, behind one small interface, with two backends.

``scipy`` (the default, :class:`ScipyDetector`) runs the tests with ``scipy.stats``
(BSD licence). ``alibi`` (:class:`AlibiDetector`, ``APPLIANCE_DRIFT_BACKEND=alibi``) has
alibi-detect run them: alibi-detect is licensed under the Business Source License 1.1
since 0.12, so production use needs a licence from Seldon; importing it also imports
torch, transformers and scikit-learn where they are installed (about 4 s of CPU and
500 MB resident). The two give the same p-values and verdicts (tests/unit/agent/
test_drift_backends.py). Everything else in the agent talks to :class:`DriftDetector`
only.

The detector is chosen by feature type, read off the reference sample: a column
whose reference values are all whole numbers with at most
``MAX_CATEGORIES`` distinct values is categorical, anything else continuous.
All continuous → Kolmogorov-Smirnov per feature (``KSDrift``); all categorical →
chi-square (``ChiSquareDrift``); mixed → ``TabularDrift`` (K-S and chi-square).
Each tests every feature and corrects for multiple testing (Bonferroni), so the
chance of a false alarm on a window from the reference distribution stays at or
below ``p_value``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from appliance.settings import DRIFT_BACKENDS

MAX_CATEGORIES = 10


@dataclass(frozen=True)
class DriftResult:
    drifted: bool
    p_values: list[float]
    distances: list[float]
    threshold: float
    method: str


class DriftDetector(Protocol):
    method: str

    def test(self, window: np.ndarray) -> DriftResult: ...


def categorical_columns(reference: np.ndarray) -> dict[int, int]:
    """Column index → number of categories, for the columns that look categorical."""
    found: dict[int, int] = {}
    for column in range(reference.shape[1]):
        values = reference[:, column]
        if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
            continue
        distinct = np.unique(values)
        if len(distinct) <= MAX_CATEGORIES:
            found[column] = int(distinct.max()) + 1 if distinct.min() >= 0 else len(distinct)
    return found


def new_detector(
    reference: np.ndarray, *, backend: str = "scipy", p_value: float = 0.05
) -> DriftDetector:
    """A detector for windows like ``reference`` (rows of features) from ``backend``."""
    if backend == "alibi":
        return AlibiDetector(reference, p_value=p_value)
    if backend == "scipy":
        return ScipyDetector(reference, p_value=p_value)
    raise ValueError(f"no drift backend {backend!r}: one of {', '.join(DRIFT_BACKENDS)}")


def _reference(reference: np.ndarray) -> np.ndarray:
    reference = np.asarray(reference, dtype=np.float32)
    if reference.ndim != 2 or len(reference) < 2:
        raise ValueError("the reference sample must be a 2-D array with at least 2 rows")
    return reference


def _window(window: np.ndarray, features: int) -> np.ndarray:
    window = np.asarray(window, dtype=np.float32)
    if window.ndim != 2 or window.shape[1] != features:
        raise ValueError(f"window has shape {window.shape}; the reference has {features} features")
    return window


def _method(categorical: int, features: int) -> str:
    return "ks" if not categorical else "chi2" if categorical == features else "tabular"


def _value_counts(column: np.ndarray) -> dict[float, int]:
    """How often each value occurs in ``column``."""
    values, counts = np.unique(column, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))


class ScipyDetector:
    """Kolmogorov-Smirnov (asymptotic, two-sided) per continuous feature, chi-square on the
    contingency table of category counts per categorical feature, and Bonferroni: drift
    when any feature's p-value is below ``p_value / features``. These are the tests
    alibi-detect's KSDrift, ChiSquareDrift and TabularDrift run, made the same way (its
    categories: the reference's values and the window's; p-values and statistics held as
    float32, as it holds them), so that both backends reach the same verdicts."""

    def __init__(self, reference: np.ndarray, *, p_value: float = 0.05) -> None:
        # lazy: scipy.stats costs 0.7 s of CPU at import; only agents with a reference pay
        from scipy import stats

        self._stats = stats
        self._reference = _reference(reference)
        self.features = self._reference.shape[1]
        self._counts: dict[int, dict[float, int]] = {}
        """Per categorical column: the reference's count of each of its values, counted once."""
        for c in categorical_columns(self._reference):
            self._counts[c] = _value_counts(self._reference[:, c])
        self.method = _method(len(self._counts), self.features)
        self.threshold = p_value / self.features

    def test(self, window: np.ndarray) -> DriftResult:
        window = _window(window, self.features)
        p_values = np.zeros(self.features, dtype=np.float32)
        distances = np.zeros_like(p_values)
        for f in range(self.features):
            new = window[:, f]
            if f in self._counts:
                reference = self._counts[f]
                window_counts = _value_counts(new)
                seen = sorted(reference.keys() | window_counts.keys())
                table = [
                    [reference.get(v, 0) for v in seen],
                    [window_counts.get(v, 0) for v in seen],
                ]
                distances[f], p_values[f], _, _ = self._stats.chi2_contingency(table)
            else:
                ks = self._stats.ks_2samp(self._reference[:, f], new, method="asymp")
                distances[f], p_values[f] = ks[:2]
        return DriftResult(
            drifted=bool((p_values < self.threshold).any()),
            p_values=[float(p) for p in p_values],
            distances=[float(d) for d in distances],
            threshold=self.threshold,
            method=self.method,
        )


class AlibiDetector:
    """KSDrift, ChiSquareDrift or TabularDrift from alibi-detect, by feature type."""

    def __init__(self, reference: np.ndarray, *, p_value: float = 0.05) -> None:
        # lazy: alibi-detect takes 3.8 s and a licence; only its backend
        from alibi_detect.cd import ChiSquareDrift, KSDrift, TabularDrift

        reference = _reference(reference)
        categorical = categorical_columns(reference)
        self.features = reference.shape[1]
        self.method = _method(len(categorical), self.features)
        self._detector: Any
        if self.method == "ks":
            self._detector = KSDrift(reference, p_val=p_value, correction="bonferroni")
        elif self.method == "chi2":
            self._detector = ChiSquareDrift(
                reference, p_val=p_value, correction="bonferroni", categories_per_feature=None
            )
        else:
            self._detector = TabularDrift(
                reference,
                p_val=p_value,
                correction="bonferroni",
                categories_per_feature={c: None for c in categorical},
            )

    def test(self, window: np.ndarray) -> DriftResult:
        window = _window(window, self.features)
        data = self._detector.predict(
            window, drift_type="batch", return_p_val=True, return_distance=True
        )["data"]
        return DriftResult(
            drifted=bool(data["is_drift"]),
            p_values=[float(p) for p in np.atleast_1d(data["p_val"])],
            distances=[float(d) for d in np.atleast_1d(data["distance"])],
            threshold=float(data["threshold"]),
            method=self.method,
        )
