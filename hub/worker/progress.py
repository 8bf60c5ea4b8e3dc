"""What a running job has to tell the hub, handed from the training thread to the heartbeat."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

log = logging.getLogger("appliance.worker")

MAX_PENDING_LINES = 1000
"""Log lines kept for the next heartbeat while the hub is unreachable."""


@dataclass
class Progress:
    fraction: float = 0.0
    message: str = ""
    stop: threading.Event = field(default_factory=threading.Event)
    """Set when the job was cancelled or its lease lost: training stops at the next step."""
    lease_lost: bool = False
    _lines: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    _milestone: int = -1

    def update(self, fraction: float, message: str) -> None:
        """The latest state; every tenth of the way also goes to the job's log."""
        with self._lock:
            self.fraction, self.message = fraction, message
            milestone = int(fraction * 10)
            crossed = milestone > self._milestone
            self._milestone = max(milestone, self._milestone)
        if crossed:
            self.log(f"{fraction:4.0%} {message}")

    def log(self, line: str) -> None:
        with self._lock:
            if len(self._lines) < MAX_PENDING_LINES:
                self._lines.append(line)
        log.info("%s", line)

    def drain(self) -> tuple[float, str, list[str]]:
        """The latest progress and the log lines not sent yet (taken out)."""
        with self._lock:
            lines, self._lines = self._lines, []
            return self.fraction, self.message, lines

    def put_back(self, lines: list[str]) -> None:
        """Lines a heartbeat could not deliver go first next time."""
        with self._lock:
            self._lines = (lines + self._lines)[:MAX_PENDING_LINES]
