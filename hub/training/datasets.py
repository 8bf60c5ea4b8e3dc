"""Datasets shipped inside dependencies, so training needs no network."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TabularDataset:
    name: str
    features: np.ndarray
    labels: np.ndarray
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]

    @property
    def sha256(self) -> str:
        """Content hash of features and labels: the dataset snapshot for lineage."""
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.features, dtype=np.float64).tobytes())
        digest.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
        return digest.hexdigest()


def breast_cancer() -> TabularDataset:
    """scikit-learn's Wisconsin breast-cancer data: 569 rows, 30 features, 2 classes."""
    # lazy: scikit-learn takes 1.1 s; only this sample data needs it
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return TabularDataset(
        name="sklearn.breast_cancer",
        features=np.asarray(data.data, dtype=np.float32),
        labels=np.asarray(data.target, dtype=np.int64),
        feature_names=tuple(str(n) for n in data.feature_names),
        class_names=tuple(str(n) for n in data.target_names),
    )


DATASETS = {"breast_cancer": breast_cancer}
