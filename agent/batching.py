"""Dynamic batching, per model, off by default.

Requests for a model named in ``APPLIANCE_BATCHING`` (``name=max_batch:max_delay_ms``,
comma-separated) are gathered into one run: the first waiting request opens a batch, which
runs when it holds ``max_batch`` rows or ``max_delay_ms`` after it opened, whichever is
first. Requests join only if their inputs have the same sizes beyond the batch axis (a
transformer's sequence length, say); others wait for the next batch. Each request gets
its own rows of every output back, and an error in the run is every joined request's.

Only models whose every input and output has a dynamic first axis are batched; for
others the setting is refused at load with a warning and requests run one by one. On a
CPU, where ONNX Runtime already keeps a core busy with one request, batching mostly adds
the delay (``bench/bench_protocols.py --agent-env APPLIANCE_BATCHING=…`` measures it);
it pays where a batch costs little more than one request, as on GPUs.

As many batches of a model run at once as it has inference workers
(``APPLIANCE_INFERENCE_WORKERS``), each on a runner thread that ends after a minute
without requests; the model's inference lane (see :mod:`agent.lanes`) is widened to
``max_batch`` threads more so that requests can wait on it for a batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from agent.repository import LoadedModel
from appliance.bundle.manifest import Manifest
from appliance.errors import ConfigError

log = logging.getLogger(__name__)

Infer = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
IDLE_S = 60.0


@dataclass(frozen=True)
class BatchPolicy:
    max_batch: int
    """Rows one run takes at most."""
    max_delay_s: float
    """How long the first request of a batch waits for others."""


def parse_policies(entries: tuple[str, ...]) -> dict[str, BatchPolicy]:
    """``APPLIANCE_BATCHING`` entries (``name=max_batch:max_delay_ms``) by model name."""
    policies = {}
    for entry in entries:
        name, _, spec = entry.partition("=")
        rows, _, delay = spec.partition(":")
        try:
            policy = BatchPolicy(int(rows), float(delay) / 1000)
        except ValueError:
            policy = BatchPolicy(0, -1.0)
        if not name or policy.max_batch < 2 or not 0 <= policy.max_delay_s <= 1:
            raise ConfigError(
                f"APPLIANCE_BATCHING entry {entry!r} is invalid",
                hint="name=max_batch:max_delay_ms, e.g. bert=8:2 (a batch of 2 rows or more, "
                "a delay of at most 1000 ms)",
            )
        policies[name.strip()] = policy
    return policies


def batchable(manifest: Manifest) -> bool:
    """Whether every input and output has a dynamic first (batch) axis."""
    return all(t.shape and t.shape[0] == -1 for t in [*manifest.inputs, *manifest.outputs])


@dataclass(eq=False)
class _Request:
    feed: dict[str, np.ndarray]
    rows: int
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, np.ndarray] | None = None
    error: BaseException | None = None

    def shapes(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        return tuple((k, v.shape[1:]) for k, v in sorted(self.feed.items()))


class Batcher:
    """The batches of one model version (see the module's notes)."""

    def __init__(self, infer: Infer, policy: BatchPolicy, name: str, runners: int = 1) -> None:
        self._infer = infer
        self.policy = policy
        self._name = name
        self._runners = max(runners, 1)
        """Batches that run at once (the model's lane workers: one per core it may use)."""
        self._waiting: list[_Request] = []
        self._changed = threading.Condition()
        self._running = 0
        self.runs = 0
        """Batches run so far (each of one or more requests)."""

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``feed`` in the next batch it fits; block until its rows are back."""
        request = _Request(feed, len(next(iter(feed.values()))))
        with self._changed:
            self._waiting.append(request)
            if self._running < self._runners:
                self._running += 1
                threading.Thread(
                    target=self._loop, name=f"batch-{self._name[:32]}", daemon=True
                ).start()
            self._changed.notify_all()
        request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def _loop(self) -> None:
        while (batch := self._next_batch()) is not None:
            if batch:  # another runner may have taken the requests this one waited for
                self._run(batch)

    def _next_batch(self) -> list[_Request] | None:
        with self._changed:
            if not self._changed.wait_for(lambda: self._waiting, IDLE_S):
                self._running -= 1
                return None
            opened = time.monotonic()
            shapes = self._waiting[0].shapes()
            while True:
                fitting = [r for r in self._waiting if r.shapes() == shapes]
                left = opened + self.policy.max_delay_s - time.monotonic()
                if sum(r.rows for r in fitting) >= self.policy.max_batch or left <= 0:
                    break
                self._changed.wait(left)
            batch: list[_Request] = []
            rows = 0
            for request in fitting:
                if batch and rows + request.rows > self.policy.max_batch:
                    break
                batch.append(request)
                rows += request.rows
            self._waiting = [r for r in self._waiting if r not in batch]
            return batch

    def _run(self, batch: list[_Request]) -> None:
        self.runs += 1
        try:
            if len(batch) == 1:
                batch[0].result = self._infer(batch[0].feed)
            else:
                joined = {k: np.concatenate([r.feed[k] for r in batch]) for k in batch[0].feed}
                results = self._infer(joined)
                cuts = np.cumsum([r.rows for r in batch])[:-1]
                parts = {k: np.split(v, cuts) for k, v in results.items()}
                for i, request in enumerate(batch):
                    request.result = {k: v[i] for k, v in parts.items()}
        except Exception as exc:  # every joined request answers with the run's error
            for request in batch:
                request.error = exc
        finally:
            for request in batch:
                request.done.set()


@dataclass
class Batchers:
    """The batcher of each batched model version, made on its first request."""

    policies: dict[str, BatchPolicy]
    runners: int = 1
    """Batches of one model that run at once: the agent's inference workers."""
    _made: dict[tuple[str, int], tuple[object, Batcher | None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def infer(self, model: LoadedModel, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        policy = self.policies.get(model.name)
        if policy is None:
            return model.runtime.infer(feed)
        key = (model.name, model.version)
        with self._lock:
            made = self._made.get(key)
            if made is None or made[0] is not model.runtime:  # a version loaded anew
                batcher = None
                if batchable(model.manifest):
                    batcher = Batcher(model.runtime.infer, policy, model.name, self.runners)
                else:
                    log.warning(
                        "APPLIANCE_BATCHING names %s, whose version %s has an input or "
                        "output without a dynamic batch axis: it runs unbatched",
                        model.name,
                        model.version,
                    )
                made = self._made[key] = (model.runtime, batcher)
        batcher = made[1]
        return batcher.infer(feed) if batcher is not None else model.runtime.infer(feed)

    def runs(self, name: str, version: int, unbatched: int) -> int:
        """Runs of a model version: its batches when batched, else ``unbatched``."""
        made = self._made.get((name, version))
        return made[1].runs if made is not None and made[1] is not None else unbatched

    def largest(self) -> int:
        """The largest batch of any batched model (0 when none is)."""
        return max((p.max_batch for p in self.policies.values()), default=0)

    def batched(self, name: str) -> bool:
        return name in self.policies

    def width(self, name: str, workers: int) -> int:
        """Threads of a model's inference lane: enough for a full batch to wait at once."""
        policy = self.policies.get(name)
        return workers + policy.max_batch if policy is not None and workers > 0 else workers
