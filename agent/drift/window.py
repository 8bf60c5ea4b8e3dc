"""A bounded window of recent inputs for one model version, kept in memory only.

A fixed ring of ``capacity`` rows (float32): recording copies rows in and never
allocates on the request path; the oldest rows are overwritten. At 1,000 rows
of 30 features that is 120 kB per model, so nothing is spilled to disk.
"""

from __future__ import annotations

import threading
import time

import numpy as np


class InputWindow:
    def __init__(self, capacity: int, features: int) -> None:
        self.capacity = capacity
        self.features = features
        self._rows = np.zeros((capacity, features), dtype=np.float32)
        self._times = np.zeros(capacity, dtype=np.float64)
        self._next = 0
        self._filled = 0
        self._lock = threading.Lock()
        self.since_check = 0
        """Rows recorded since the last drift test."""

    def add(self, batch: np.ndarray) -> None:
        n = len(batch)
        if n >= self.capacity:
            batch, n = batch[-self.capacity :], self.capacity
        now = time.time()
        with self._lock:
            end = self._next + n
            if end <= self.capacity:
                self._rows[self._next : end] = batch
                self._times[self._next : end] = now
            else:
                split = self.capacity - self._next
                self._rows[self._next :] = batch[:split]
                self._rows[: n - split] = batch[split:]
                self._times[self._next :] = now
                self._times[: n - split] = now
            self._next = end % self.capacity
            self._filled = min(self.capacity, self._filled + n)
            self.since_check += n

    def take(self) -> tuple[np.ndarray, float, float]:
        """A copy of the rows held and the time span they cover; resets the check counter."""
        with self._lock:
            rows = self._rows[: self._filled].copy()
            times = self._times[: self._filled]
            span = (float(times.min()), float(times.max())) if self._filled else (0.0, 0.0)
            self.since_check = 0
        return rows, span[0], span[1]

    def __len__(self) -> int:
        return self._filled
