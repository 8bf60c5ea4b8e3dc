"""Inference off the event loop: one bounded lane of worker threads per model.

Inference ran on the event loop, so under load every other request (the health and
readiness probes a supervisor restarts agents by, ``/metrics``, status, feedback) waited
behind it: ``/v2/health/live`` took a median of 569 ms with 8 clients on a transformer.
Now each model runs on its own small thread pool (ONNX Runtime and OpenVINO release the
GIL while they compute), and the loop only hands requests over and back.

Each lane admits at most ``workers`` running and ``queue`` waiting requests; one more is
refused at once with 429 and ``Retry-After`` (:class:`~appliance.errors.BusyError`)
instead of queueing without end, and a slow model cannot hold another model's threads. A
request still running after ``timeout_s`` is answered 504; its thread finishes the work
and only then frees its place in the lane, so the bound holds.

Handing a request to a thread and back is not free: under load it cost a small model
about 170 µs of CPU per request, more than the model itself (``bench/bench_workers.py``).
So a lane keeps a moving average of the CPU time its requests take (decode, run, encode),
and while that is under ``inline_below_s`` a request no larger than twice the usual one
runs on the event loop itself: a probe then waits at most that long per request ahead
of it. A first request, a larger one, and every request of a slower model go to the
threads; a batched model's always do, since they wait there for one another.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from appliance.errors import BusyError, TimedOutError

T = TypeVar("T")


@dataclass
class _Lane:
    executor: ThreadPoolExecutor
    threads: int
    may_inline: bool = False
    admitted: int = 0
    """Running plus waiting; changed on the event loop's thread only."""
    cost_s: float | None = None
    """Moving average of the CPU time one request takes (None: none measured yet) …"""
    size: float = 0.0
    """… and of the requests' sizes (bytes)."""

    def cheap(self, size: int, below_s: float) -> bool:
        """Whether a request of ``size`` bytes should run on the loop."""
        cost = self.cost_s
        return self.may_inline and cost is not None and cost < below_s and size <= 2 * self.size

    def measured(self, work: Callable[[], T], size: int) -> T:
        began = time.thread_time()
        try:
            return work()
        finally:
            spent = time.thread_time() - began
            if self.cost_s is None:
                self.cost_s, self.size = spent, float(size)
            else:
                self.cost_s += _WEIGHT * (spent - self.cost_s)
                self.size += _WEIGHT * (size - self.size)


_WEIGHT = 0.05
"""Of the newest request in the moving averages (about the last 20 count)."""


@dataclass
class InferenceLanes:
    workers: int = 2
    """Requests one model runs at once; 0 runs them on the event loop itself (the lowest
    latency for a tiny model on one core, but probes wait behind inference again)."""
    queue: int = 32
    """Requests one model keeps waiting beyond those; more get 429."""
    timeout_s: float = 30.0
    """A request not answered by then gets 504."""
    known: Callable[[str], bool] = lambda _name: True
    """Which names get a lane: models this agent serves (others fail fast, inline)."""
    width: Callable[[str, int], int] = lambda _name, workers: workers
    """A model's threads given ``workers``: more for a batched model (:mod:`agent.batching`),
    whose requests wait on their threads to be gathered."""
    inline_below_s: float = 0.0
    """Requests of a model that take less CPU than this on average run on the loop (0:
    never)…"""
    batched: Callable[[str], bool] = lambda _name: False
    """… unless the model is batched."""
    _lanes: dict[str, _Lane] = field(default_factory=dict)

    async def run(self, model: str, work: Callable[[], T], size: int = 0) -> T:
        """``work`` (a request of ``size`` bytes) in ``model``'s lane, or on the loop."""
        if self.workers <= 0 or not self.known(model):
            return work()  # inline by choice, or an unknown model the work refuses (404)
        lane = self._lanes.get(model)
        if lane is None:
            threads = self.width(model, self.workers)
            lane = self._lanes[model] = _Lane(
                ThreadPoolExecutor(threads, thread_name_prefix=f"infer-{model[:32]}"),
                threads,
                may_inline=self.inline_below_s > 0 and not self.batched(model),
            )
        if lane.cheap(size, self.inline_below_s):
            return lane.measured(work, size)
        if lane.admitted >= lane.threads + self.queue:
            raise BusyError(
                f"model {model!r} has {lane.admitted} requests running or waiting",
                hint="retry after a moment; add agents or lower the request rate",
            )
        lane.admitted += 1
        future = asyncio.get_running_loop().run_in_executor(
            lane.executor, lane.measured, work, size
        )
        future.add_done_callback(lambda done: self._release(lane, done))
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.timeout_s)
        except TimeoutError as exc:
            raise TimedOutError(
                f"model {model!r} did not answer within {self.timeout_s:g} s"
            ) from exc

    def admitted(self, model: str) -> int:
        lane = self._lanes.get(model)
        return lane.admitted if lane else 0

    @staticmethod
    def _release(lane: _Lane, done: asyncio.Future[T]) -> None:
        lane.admitted -= 1
        if not done.cancelled():
            done.exception()  # seen, also when no one waits any more (a timed-out request)

    def close(self) -> None:
        for lane in self._lanes.values():
            lane.executor.shutdown(wait=False, cancel_futures=True)
