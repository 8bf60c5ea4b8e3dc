"""A serving process's rows reach the owner's drift windows (agent.drift.spool)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import numpy as np

from agent.drift import spool
from agent.drift.spool import RowSpool, take_spooled


class _Windows:
    """What take_spooled needs of a DriftMonitor: add_rows."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int], list[np.ndarray]] = {}

    def add_rows(self, name: str, version: int, batch: np.ndarray) -> int:
        self.rows.setdefault((name, version), []).append(batch)
        return len(batch)


def _model(name: str, version: int) -> Any:
    return SimpleNamespace(name=name, version=version)


def test_rows_cross_to_the_owner_at_most_a_window_each_and_only_once(tmp_path):
    serving = RowSpool(tmp_path, window_rows=5, pid=7)
    rows = np.arange(36, dtype=np.float32).reshape(12, 3)
    for start in (0, 4, 8):  # 12 rows; whole batches are dropped while 5 or more remain
        serving.record(_model("m", 1), {"x": rows[start : start + 4]})
    with_nan = np.array([[np.nan, 1, 2], [3, 4, 5]], dtype=np.float32)
    serving.record(_model("m", 2), {"x": with_nan})
    serving.record(_model("ids", 1), {"x": np.ones((2, 3), dtype=np.int64)})  # not tabular
    assert serving.flush() and not serving.flush()  # nothing new the second time
    windows = _Windows()
    taken = take_spooled(tmp_path, cast(Any, windows))
    (m1,) = windows.rows["m", 1]
    assert len(m1) == 8 and (m1 == rows[-len(m1) :]).all()
    np.testing.assert_array_equal(windows.rows["m", 2][0], with_nan[1:])
    assert ("ids", 1) not in windows.rows and taken == len(m1) + 1
    assert take_spooled(tmp_path, cast(Any, windows)) == 0 and not list(tmp_path.iterdir())


def test_a_stuck_owner_costs_a_few_files_not_the_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(spool, "MAX_PENDING", 3)
    serving = RowSpool(tmp_path, window_rows=5, pid=7)
    for _ in range(6):
        serving.record(_model("m", 1), {"x": np.ones((1, 3), dtype=np.float32)})
        serving.flush()
    assert len(list(tmp_path.glob("rows-7-*.npz"))) == 3
