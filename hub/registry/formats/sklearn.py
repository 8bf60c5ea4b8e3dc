"""scikit-learn estimators to ONNX (skl2onnx), and reading them safely from skops files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance.errors import UnprocessableInputError
from hub.registry.formats.detect import unconvertible

TRUSTED_MODULES = ("sklearn.", "numpy.", "scipy.")
"""Types a skops file may hold on the hub: estimators and their arrays, nothing else."""


def load_skops(path: Path) -> Any:
    """The estimator in a skops file, refused when it holds a type outside
    :data:`TRUSTED_MODULES` (skops would otherwise need to be told to trust it)."""
    import skops.io  # lazy: skops takes 2.5 s; only skops uploads need it

    try:
        untrusted = skops.io.get_untrusted_types(file=path)
    except Exception as exc:  # skops raises assorted errors for damaged files
        raise unconvertible("model: not a readable skops file", exc) from exc
    foreign = [t for t in untrusted if not t.startswith(TRUSTED_MODULES)]
    if foreign:
        raise UnprocessableInputError(
            f"model: the skops file holds types the hub does not trust: {foreign[:5]}",
            hint="only scikit-learn estimators (with NumPy and SciPy values) import as skops",
        )
    try:
        return skops.io.load(path, trusted=untrusted)
    except Exception as exc:
        raise unconvertible("model: skops could not load the file", exc) from exc


def to_onnx(estimator: Any, n_features: int | None = None) -> bytes:
    """An ONNX graph with one FP32 input ``X`` of ``[batch, n_features]``; a classifier's
    probabilities come out as a ``[batch, classes]`` tensor, not a sequence of maps."""
    # lazy: skl2onnx takes 1.3 s; only sklearn uploads need it
    from skl2onnx import to_onnx as convert
    from skl2onnx.common.data_types import FloatTensorType

    features = n_features or getattr(estimator, "n_features_in_", None)
    if not features:
        raise UnprocessableInputError(
            "model: the estimator does not say how many features it takes (n_features_in_)",
            hint="fit it on a 2-D array or DataFrame of numbers before saving it",
        )
    options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "predict_proba") else None
    try:
        graph = convert(
            estimator,
            initial_types=[("X", FloatTensorType([None, int(features)]))],
            options=options,
        )
    except Exception as exc:  # skl2onnx raises RuntimeError, NameError, … for what it lacks
        raise UnprocessableInputError(
            f"model: skl2onnx could not convert {type(estimator).__name__} ({exc})"[:600],
            hint="skl2onnx converts scikit-learn's own estimators on numeric features",
        ) from exc
    data: bytes = graph.SerializeToString()
    return data
