"""A new model's first requests: it stays only if they succeed.

A version fresh from an update serves on probation. It passes after
``requests`` successful inferences, or after ``seconds`` without reaching
``max_failures`` (a quiet agent must not wait for ever); it fails as soon as
``max_failures`` inferences raise inside the runtime. Requests refused for bad
input are the caller's fault and do not count. With ``--workers N`` the serving
processes' requests of the version count too (``elsewhere``, read off what they share,
:mod:`agent.peers`), from the moment the probation began.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["pass", "fail"]


@dataclass(frozen=True)
class ProbationPolicy:
    requests: int = 20
    seconds: float = 30.0
    max_failures: int = 2


class Probation:
    def __init__(
        self,
        policy: ProbationPolicy,
        clock: Callable[[], float] = time.monotonic,
        elsewhere: Callable[[], tuple[float, float]] = lambda: (0.0, 0.0),
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._started = clock()
        self._ok = 0
        self._failed = 0
        self._elsewhere = elsewhere
        """(successes, failures) other processes counted so far …"""
        self._before = elsewhere()
        """… of which these came before the probation."""
        self.last_failure: str | None = None
        self._lock = threading.Lock()

    def record(self, ok: bool, detail: str | None = None) -> None:
        with self._lock:
            if ok:
                self._ok += 1
            else:
                self._failed += 1
                self.last_failure = detail

    def _counts(self) -> tuple[int, int]:
        ok, failed = self._elsewhere()
        return (
            self._ok + int(max(0.0, ok - self._before[0])),
            self._failed + int(max(0.0, failed - self._before[1])),
        )

    def verdict(self) -> Verdict | None:
        ok, failed = self._counts()
        with self._lock:
            if failed >= self.policy.max_failures:
                return "fail"
            if ok >= self.policy.requests:
                return "pass"
            if self._clock() - self._started >= self.policy.seconds:
                return "pass"
            return None

    def summary(self) -> str:
        ok, failed = self._counts()
        return f"{failed} of its first {ok + failed} requests failed" + (
            f" (last: {self.last_failure})" if self.last_failure else ""
        )
