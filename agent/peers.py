"""What each process of a ``--workers N`` agent counted, shared through its data directory.

Every process answers a share of the requests, so each counts a share. Once a second
each writes its counters (requests by outcome, latency histogram, last inference) to
``processes/<pid>.json`` under the data directory; the owner adds what only it knows
(the hub's reachability, sync troubles, drift results). Whichever process answers
``/metrics``, the statistics extension or ``/agent/status`` adds the others' files to
its own live counters, so a scrape sees the agent's totals (at most a second behind for
the other processes), and the owner's serving summaries to the hub count every request.

When a serving process exits, the owner folds its last counts into ``retired.json``,
so totals never go backwards (a crash loses at most its last second). The owner clears
the folder at start-up. Nothing here is secret: counts and p-values, as ``/metrics``
shows them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

log = logging.getLogger(__name__)

SampleKey = tuple[str, str, str, str, str]
"""(sample name, model, version, variant, outcome or bucket bound)."""
RETIRED = "retired"
REQUESTS = "appliance_agent_requests_total"
PUBLISH_S = 1.0


class Share(msgspec.Struct, forbid_unknown_fields=False):
    """One process's counts (cumulative since it started), and the owner's state."""

    pid: int
    role: str
    samples: list[tuple[SampleKey, float]] = []
    last: list[tuple[str, int, float]] = []
    """(model, version, when it last answered, s since the epoch)."""
    status: dict[str, Any] = {}
    """The owner's: ``/agent/status`` fields only it knows."""
    hub_reachable: bool = False
    drift: list[tuple[str, int, bool, list[float]]] = []
    """The owner's last drift results: (model, version, drifted, p-values)."""


@dataclass
class Totals:
    """Counts added up over processes: samples summed, last inferences the latest."""

    samples: dict[SampleKey, float] = field(default_factory=dict)
    last: dict[tuple[str, int], float] = field(default_factory=dict)
    """(model, version) → when it last answered, s since the epoch."""

    def add(
        self, samples: Iterable[tuple[SampleKey, float]], last: Iterable[tuple[str, int, float]]
    ) -> Totals:
        for key, value in samples:
            self.samples[key] = self.samples.get(key, 0.0) + value
        for model, version, when in last:
            self.last[model, version] = max(when, self.last.get((model, version), 0.0))
        return self

    def add_shares(self, shares: Iterable[Share]) -> Totals:
        for share in shares:
            self.add(share.samples, share.last)
        return self


class Peers:
    """This process's file in the shared folder, and the others'."""

    def __init__(self, folder: Path, role: str, pid: int | None = None) -> None:
        self.folder = folder
        self.role = role
        self.pid = os.getpid() if pid is None else pid
        self._written: bytes = b""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def clear(self) -> None:
        """The owner, at start-up: counts of an earlier run are not this run's."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)

    def publish(self, share: Share) -> None:
        data = msgspec.json.encode(share)
        if data == self._written:
            return
        self._write(self.pid, data)
        self._written = data

    def _write(self, name: int | str, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.folder / f".{name}.tmp"
        temporary.write_bytes(data)  # counters are rewritten each second: no fsync
        os.replace(temporary, self.folder / f"{name}.json")

    def others(self) -> list[Share]:
        """Every other process's last share, and the retired processes' sum."""
        shares = []
        for path in self.folder.glob("*.json"):
            if path.stem == str(self.pid):
                continue
            share = _read(path)
            if share is not None:
                shares.append(share)
        return shares

    def requests(self, model: str, version: int) -> tuple[float, float]:
        """(successes, failures) of a model version in the other processes so far."""
        ok = failed = 0.0
        for share in self.others():
            for (sample, name, ver, _variant, outcome), value in share.samples:
                if sample == REQUESTS and (name, ver) == (model, str(version)):
                    if outcome == "ok":
                        ok += value
                    elif outcome == "error":
                        failed += value
        return ok, failed

    def owner(self) -> Share | None:
        return next((s for s in self.others() if s.role == "owner"), None)

    def retire(self, pid: int) -> None:
        """Fold an exited process's last counts into the retired sum (the owner only)."""
        path = self.folder / f"{pid}.json"
        gone = _read(path)
        if gone is None:
            return
        retired = _read(self.folder / f"{RETIRED}.json") or Share(pid=0, role=RETIRED)
        totals = Totals().add_shares([retired, gone])
        summed = Share(
            pid=0,
            role=RETIRED,
            samples=sorted(totals.samples.items()),
            last=[(m, v, t) for (m, v), t in sorted(totals.last.items())],
        )
        self._write(RETIRED, msgspec.json.encode(summed))
        path.unlink(missing_ok=True)
        (self.folder / f".{pid}.tmp").unlink(missing_ok=True)

    def start(self, snapshot: Callable[[], Share]) -> None:
        """Publish ``snapshot()`` every second until :meth:`stop` (and once more then)."""

        def run() -> None:
            while not self._stop.wait(PUBLISH_S):
                try:
                    self.publish(snapshot())
                except Exception:  # a full disk must not stop the counting; try again
                    log.exception("could not share this process's counts")
            with contextlib.suppress(Exception):
                self.publish(snapshot())

        self.publish(snapshot())
        self._thread = threading.Thread(target=run, name="appliance-peers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)


def _read(path: Path) -> Share | None:
    try:
        return msgspec.json.decode(path.read_bytes(), type=Share)
    except (OSError, msgspec.DecodeError):
        return None  # gone, or being replaced: the next look sees it
