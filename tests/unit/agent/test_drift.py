"""Drift on the device: real data shifted is caught, unshifted data rarely raises an alarm."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from agent.drift.detectors import DriftDetector, categorical_columns, new_detector
from agent.drift.monitor import DriftMonitor, DriftSettings
from agent.drift.window import InputWindow
from agent.outbox import Outbox

P_VALUE = 0.05


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    """Breast-cancer features (as scikit-learn ships them), shuffled: reference and held out."""
    rows = load_breast_cancer().data.astype(np.float32)
    rows = rows[np.random.default_rng(7).permutation(len(rows))]
    return rows[:300], rows[300:]


@pytest.fixture(scope="module")
def detector(data) -> DriftDetector:
    """The agents' default backend (scipy); tests/unit/agent/test_drift_backends.py shows
    that alibi-detect's reaches the same verdicts."""
    return new_detector(data[0], p_value=P_VALUE)


def _windows(pool: np.ndarray, count: int, size: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [pool[rng.choice(len(pool), size, replace=True)] for _ in range(count)]


def test_continuous_features_use_kolmogorov_smirnov(detector):
    assert detector.method == "ks"


def test_a_realistic_shift_of_one_feature_is_detected(data, detector):
    _reference, held_out = data
    shifted = held_out.copy()
    shifted[:, 0] += 0.5 * held_out[:, 0].std()  # mean radius reads half a std high
    results = [detector.test(w) for w in _windows(shifted, 20, 200, seed=1)]
    assert sum(r.drifted for r in results) >= 18
    smallest = [int(np.argmin(r.p_values)) for r in results if r.drifted]
    assert max(set(smallest), key=smallest.count) == 0  # and the feature is named


def test_unshifted_windows_rarely_raise_a_false_alarm():
    """Many independent splits of the real data into reference and window (no shift)."""
    rows = load_breast_cancer().data.astype(np.float32)
    rng = np.random.default_rng(2)
    results = []
    for _ in range(200):
        shuffled = rows[rng.permutation(len(rows))]
        detector = new_detector(shuffled[:300], p_value=P_VALUE)
        results.append(detector.test(shuffled[300:500]))
    false_alarms = sum(r.drifted for r in results) / len(results)
    assert false_alarms <= P_VALUE
    assert all(len(r.p_values) == 30 for r in results)
    assert all(r.threshold == pytest.approx(P_VALUE / 30) for r in results)


def test_categorical_and_mixed_features_get_chi_square_and_tabular():
    rng = np.random.default_rng(3)
    categories = rng.integers(0, 4, (500, 3)).astype(np.float32)
    assert new_detector(categories).method == "chi2"
    mixed = np.hstack([rng.standard_normal((500, 2)).astype(np.float32), categories])
    detector = new_detector(mixed)
    assert detector.method == "tabular"
    assert categorical_columns(mixed) == {2: 4, 3: 4, 4: 4}
    skewed = mixed[:200].copy()
    skewed[:, 3] = 0  # every row in one category
    assert detector.test(skewed).drifted
    assert not detector.test(mixed[300:500]).drifted


def test_a_window_of_the_wrong_width_is_refused(detector):
    with pytest.raises(ValueError, match="30 features"):
        detector.test(np.zeros((10, 4), np.float32))


def test_the_window_keeps_only_the_most_recent_rows():
    window = InputWindow(capacity=5, features=2)
    for i in range(7):
        window.add(np.full((1, 2), i, np.float32))
    rows, started, ended = window.take()
    assert sorted(rows[:, 0].tolist()) == [2, 3, 4, 5, 6]
    assert started <= ended and window.since_check == 0
    window.add(np.arange(24, dtype=np.float32).reshape(12, 2))  # a batch larger than the window
    assert sorted(window.take()[0][:, 0].tolist()) == [14, 16, 18, 20, 22]


class _Model:
    """The parts of a loaded model the monitor reads."""

    def __init__(self, reference: np.ndarray, version: int = 1) -> None:
        self.name, self.version, self.reference = "bc", version, reference


def test_the_monitor_tests_when_enough_rows_arrived_and_queues_only_statistics(data, tmp_path):
    reference, held_out = data
    outbox = Outbox(tmp_path)
    monitor = DriftMonitor(
        outbox, DriftSettings(window_rows=200, min_rows=100, every_requests=150, interval_s=3600)
    )
    model = _Model(reference)
    monitor.record(model, {"input": held_out[:1]})  # type: ignore[arg-type]
    monitor.watch([model])  # type: ignore[list-item]
    for row in held_out[:99]:
        monitor.record(model, {"input": row[None, :]})  # type: ignore[arg-type]
    assert monitor.check() == [] and outbox.depth() == 0  # too few rows yet
    shifted = held_out.copy()
    shifted[:, 0] += held_out[:, 0].std()
    for row in shifted[:150]:
        monitor.record(model, {"input": row[None, :]})  # type: ignore[arg-type]
    (report,) = monitor.check()
    assert report["drifted"] and report["window_size"] == 200 and report["method"] == "ks"
    (queued,) = outbox.pending()
    assert queued.kind == "drift" and set(queued.body) == {
        "model",
        "version",
        "method",
        "drifted",
        "p_values",
        "distances",
        "threshold",
        "window_size",
        "started_at",
        "ended_at",
    }
    assert monitor.check() == []  # nothing new since


def test_serving_summaries_count_errors_and_estimate_p95_from_the_counters(data, tmp_path):
    from agent.metrics import AgentMetrics, ServingSummaries, StateSources
    from agent.repository import ModelRepository

    outbox = Outbox(tmp_path)
    metrics = AgentMetrics(
        StateSources(ModelRepository(), outbox, DriftMonitor(outbox), lambda: True)
    )
    summaries = ServingSummaries(metrics)
    model = _Model(data[0], version=3)
    for i in range(100):
        metrics.observe(model, 0.002 if i < 90 else 0.2, "ok")  # type: ignore[arg-type]
    metrics.observe(model, 0.0, "error")  # type: ignore[arg-type]
    metrics.observe(model, 0.0, "rejected")  # type: ignore[arg-type]
    (report,) = summaries.take()
    assert (report["model"], report["version"], report["requests"]) == ("bc", 3, 102)
    assert (report["errors"], report["rejected"]) == (1, 1)
    assert 0.1 < report["latency_p95_s"] <= 0.25  # inside the bucket of the slowest tenth
    assert summaries.take() == []  # nothing since
    metrics.observe(model, 0.002, "ok")  # type: ignore[arg-type]
    assert summaries.flush(outbox) == 1 and outbox.pending()[0].kind == "serving"
