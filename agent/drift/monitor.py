"""Watching every served model version for drift; the statistics go to the outbox.

:meth:`DriftMonitor.record` is on the request path: it copies the batch's rows
into the version's window and counts. :meth:`DriftMonitor.check` runs in the
background (the agent's scheduler, every few seconds): a version is tested
when ``every_requests`` rows arrived since its last test or ``interval_s``
passed, provided its window holds at least ``min_rows``. A test's result is
queued in the outbox under a fresh idempotency key.

Only tabular models are watched: the first input must be a 2-D float tensor
with as many features as the bundle's reference sample.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from agent.drift.detectors import DriftDetector, DriftResult, new_detector
from agent.drift.window import InputWindow
from agent.outbox import Outbox
from agent.repository import LoadedModel
from appliance.settings import DriftBackend

log = logging.getLogger(__name__)


class RowRecorder(Protocol):
    """Where the request path puts a served batch's rows: a drift monitor, or (in a
    serving process of ``--workers N``) the spool to the owner's (:mod:`.spool`)."""

    def record(self, model: LoadedModel, feed: dict[str, np.ndarray]) -> None: ...


@dataclass(frozen=True)
class DriftSettings:
    window_rows: int = 1000
    """Rows kept per model version (the most recent)."""
    min_rows: int = 200
    """No test on fewer rows than this."""
    every_requests: int = 1000
    """Test after this many new rows …"""
    interval_s: float = 300.0
    """… or this long after the last test, whichever comes first."""
    p_value: float = 0.05
    """Significance of the whole test (per-feature tests are corrected for multiplicity)."""
    backend: DriftBackend = "scipy"
    """What runs the tests: ``scipy`` or ``alibi`` (:mod:`agent.drift.detectors`)."""


@dataclass
class _Watch:
    name: str
    version: int
    window: InputWindow
    detector: DriftDetector
    last_check: float = field(default_factory=time.monotonic)
    last: DriftResult | None = None


class DriftMonitor:
    def __init__(self, outbox: Outbox, settings: DriftSettings | None = None) -> None:
        self.outbox = outbox
        self.settings = settings or DriftSettings()
        self._watches: dict[tuple[str, int], _Watch | None] = {}
        self._lock = threading.Lock()

    def watch(self, models: list[LoadedModel]) -> None:
        """Set up windows for the versions being served, and drop the others.

        Runs in the background: building a detector imports its statistics library and reads
        the reference sample, which must never hold up a request.
        """
        serving = {(m.name, m.version) for m in models}
        created = {
            (m.name, m.version): self._new_watch(m)
            for m in models
            if (m.name, m.version) not in self._watches
        }
        with self._lock:
            watches = {k: w for k, w in self._watches.items() if k in serving}
            watches.update(created)
            self._watches = watches

    def _new_watch(self, model: LoadedModel) -> _Watch | None:
        reference = model.reference
        if reference is None or reference.ndim != 2 or len(reference) < 2:
            log.info("%s v%d has no tabular reference sample: no drift watch", *_id(model))
            return None
        try:
            detector = new_detector(
                reference, backend=self.settings.backend, p_value=self.settings.p_value
            )
        except (ValueError, ImportError) as exc:
            log.warning("no drift watch for %s v%d: %s", *_id(model), exc)
            return None
        window = InputWindow(self.settings.window_rows, reference.shape[1])
        return _Watch(model.name, model.version, window, detector)

    def record(self, model: LoadedModel, feed: dict[str, np.ndarray]) -> None:
        """On the request path: keep the batch's rows (first input) for the next test.

        A version not watched yet (just swapped in) is skipped until the background
        job has set up its window.
        """
        self.add_rows(model.name, model.version, next(iter(feed.values())))

    def add_rows(self, name: str, version: int, batch: np.ndarray) -> int:
        """Keep ``batch``'s rows if the version is watched and they fit; rows kept."""
        watch = self._watches.get((name, version))
        if watch is None or batch.ndim != 2 or batch.shape[1] != watch.window.features:
            return 0
        if batch.dtype.kind == "f":  # a model opted in to NaN: such rows test nothing
            batch = batch[np.isfinite(batch).all(axis=1)]
        if len(batch):
            watch.window.add(batch)
        return len(batch)

    def check(self, *, force: bool = False) -> list[dict[str, Any]]:
        """Test every due window; queue and return the reports."""
        reports = []
        for watch in [w for w in list(self._watches.values()) if w is not None]:
            due = (
                watch.window.since_check >= self.settings.every_requests
                or time.monotonic() - watch.last_check >= self.settings.interval_s
            )
            if len(watch.window) < self.settings.min_rows or not (due or force):
                continue
            if watch.window.since_check == 0 and not force:
                continue  # nothing new since the last test
            rows, started, ended = watch.window.take()
            result = watch.detector.test(rows)
            watch.last, watch.last_check = result, time.monotonic()
            report = {
                "model": watch.name,
                "version": watch.version,
                "method": result.method,
                "drifted": result.drifted,
                "p_values": result.p_values,
                "distances": result.distances,
                "threshold": result.threshold,
                "window_size": len(rows),
                "started_at": started,
                "ended_at": ended,
            }
            self.outbox.put("drift", report, key=f"drift-{uuid.uuid4()}")
            if result.drifted:
                log.warning(
                    "drift in %s v%d: smallest p-value %.2g over %d rows",
                    watch.name,
                    watch.version,
                    min(result.p_values),
                    len(rows),
                )
            reports.append(report)
        return reports

    def status(self) -> dict[str, dict[str, Any]]:
        """What is watched, for ``/agent/status``."""
        return {
            f"{w.name}/{w.version}": {
                "rows": len(w.window),
                "method": w.detector.method,
                "last_drifted": w.last.drifted if w.last else None,
            }
            for w in list(self._watches.values())
            if w is not None
        }

    def latest(self) -> dict[tuple[str, int], DriftResult]:
        """The last result per model version (for metrics)."""
        return {k: w.last for k, w in list(self._watches.items()) if w and w.last}


def _id(model: LoadedModel) -> tuple[str, int]:
    return model.name, model.version
