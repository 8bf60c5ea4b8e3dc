"""From a job's point-in-time training set (Arrow) to the arrays a trainer takes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from appliance.errors import InvalidInputError
from hub.training.evaluation import Task

MIN_ROWS = 10
"""Fewer usable rows than this: nothing worth training or evaluating."""


@dataclass(frozen=True)
class Arrays:
    features: np.ndarray
    """FP32 ``[n, n_features]``."""
    labels: np.ndarray
    """Class indices (int64) or FP32 targets."""
    feature_names: list[str]
    classes: list[str]
    dropped: int
    """Rows left out because a feature was missing (no value within the view's TTL)."""


def feature_columns(table: pa.Table, views: list[str]) -> list[str]:
    """The ``<view>__<feature>`` columns of ``views`` (refs may carry ``:version``)."""
    prefixes = tuple(f"{ref.partition(':')[0]}__" for ref in views)
    return [name for name in table.column_names if name.startswith(prefixes)]


def to_arrays(table: pa.Table, views: list[str], label: str, task: Task) -> Arrays:
    """Numbers only: bool features become 0/1; a string feature is refused with a hint.

    Rows with any missing feature are dropped (and counted): the exported model
    takes raw rows and has no imputation inside, so it must not learn one.
    """
    names = feature_columns(table, views)
    if not names:
        raise InvalidInputError("the training set has no feature columns")
    for name in names:
        kind = table.schema.field(name).type
        if not (
            pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
        ):
            raise InvalidInputError(
                f"feature {name} is {kind}; the built-in trainers take numbers and booleans",
                hint="leave it out of the view, or encode it as numbers at ingest",
            )
    complete = pc.is_valid(table[names[0]])
    for name in names[1:]:
        complete = pc.and_(complete, pc.is_valid(table[name]))
    kept = table.filter(complete)
    dropped = table.num_rows - kept.num_rows
    if kept.num_rows < MIN_ROWS:
        raise InvalidInputError(
            f"only {kept.num_rows} of {table.num_rows} label events have every feature "
            f"(at least {MIN_ROWS} needed)",
            hint="check the views' time-to-live and that features were ingested for these "
            "entities before the label times",
        )
    features = np.column_stack(
        [kept[n].to_numpy(zero_copy_only=False).astype(np.float32) for n in names]
    )
    raw = kept[label].to_numpy(zero_copy_only=False)
    if task == "regression":
        try:
            labels = raw.astype(np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"label {label}: regression needs numbers ({exc})") from exc
        return Arrays(features, labels, names, [], dropped)
    values, indices = np.unique(
        raw.astype(str) if raw.dtype == object else raw, return_inverse=True
    )
    if len(values) < 2:
        raise InvalidInputError(f"label {label}: every event has the same value; nothing to learn")
    return Arrays(features, indices.astype(np.int64), names, [str(v) for v in values], dropped)
