"""The drift test, behind one small interface; alibi-detect does the statistics.

alibi-detect is licensed under the Business Source License 1.1 since 0.12:
production use needs a licence from Seldon. Everything else in the agent talks
to :class:`DriftDetector` only, so another implementation can replace this one
module.

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


class AlibiDetector:
    """KSDrift, ChiSquareDrift or TabularDrift from alibi-detect, by feature type."""

    def __init__(self, reference: np.ndarray, *, p_value: float = 0.05) -> None:
        # lazy: alibi-detect takes 3.8 s and a licence; only drift tests
        from alibi_detect.cd import ChiSquareDrift, KSDrift, TabularDrift

        reference = np.asarray(reference, dtype=np.float32)
        if reference.ndim != 2 or len(reference) < 2:
            raise ValueError("the reference sample must be a 2-D array with at least 2 rows")
        categorical = categorical_columns(reference)
        self.features = reference.shape[1]
        self._detector: Any
        if not categorical:
            self.method = "ks"
            self._detector = KSDrift(reference, p_val=p_value, correction="bonferroni")
        elif len(categorical) == self.features:
            self.method = "chi2"
            self._detector = ChiSquareDrift(
                reference, p_val=p_value, correction="bonferroni", categories_per_feature=None
            )
        else:
            self.method = "tabular"
            self._detector = TabularDrift(
                reference,
                p_val=p_value,
                correction="bonferroni",
                categories_per_feature={c: None for c in categorical},
            )

    def test(self, window: np.ndarray) -> DriftResult:
        window = np.asarray(window, dtype=np.float32)
        if window.ndim != 2 or window.shape[1] != self.features:
            raise ValueError(
                f"window has shape {window.shape}; the reference has {self.features} features"
            )
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
