"""Stopping and starting a host's services, and asking the new release whether it is well.

``systemctl`` where systemd runs the appliance (the units in ``systemd/``); otherwise the
operator's own stop and start commands (another supervisor, a container runtime), run with
``sh -c``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from appliance.cli.upgrade.errors import UpgradeError
from appliance.cli.upgrade.process import run_step


class Services(Protocol):
    def stop(self) -> None: ...

    def start(self) -> None: ...


def _run(argv: list[str], what: str) -> None:
    run_step(argv, what, timeout=300, lines=None)


@dataclass(frozen=True)
class Systemd:
    units: tuple[str, ...]

    def stop(self) -> None:
        _run(["systemctl", "stop", *self.units], f"stop {', '.join(self.units)}")

    def start(self) -> None:
        _run(["systemctl", "start", *self.units], f"start {', '.join(self.units)}")


@dataclass(frozen=True)
class Commands:
    stop_command: str
    start_command: str

    def stop(self) -> None:
        _run(["sh", "-c", self.stop_command], "stop the services")

    def start(self) -> None:
        _run(["sh", "-c", self.start_command], "start the services")


@dataclass(frozen=True)
class HealthCheck:
    url: str
    """200 with the release's version in its answer: the hub's ``/health``, an agent's
    ``/v2`` (the Open Inference Protocol's server metadata)."""
    timeout: float = 120.0
    ca: Path | None = None
    """Check the service's certificate against this CA (loopback only without one)."""
    ready_url: str | None = None
    """Must answer 200 too: an agent's ``/v2/health/ready`` when it served models before
    the upgrade (the new release must load them again)."""
    broken_after: int = 3
    """Answers of 500 in a row that fail the check before the timeout (0: never). A 500 is
    the new release's own error, not a start still under way (no answer yet, or 503 while
    models load): a broken release is rolled back in seconds, not after the whole wait
    (Kubernetes' probes judge the same way, with ``failureThreshold``)."""
    every: float = 1.0
    """Seconds between two questions."""

    def answers(self, url: str) -> bool:
        """Whether ``url`` answers 200 now."""
        verify: str | bool = str(self.ca) if self.ca else False
        try:
            return httpx.get(url, timeout=5.0, verify=verify).status_code == 200
        except httpx.HTTPError:
            return False

    def wait(self, version: str | None) -> None:
        """Return once the service answers healthy (with ``version``, unless None); raise at
        the deadline, or once it has answered 500 :attr:`broken_after` times in a row."""
        deadline = time.monotonic() + self.timeout
        seen = "no answer"
        errors = 0
        verify: str | bool = str(self.ca) if self.ca else False
        with httpx.Client(timeout=5.0, verify=verify) as client:
            while True:
                try:
                    answer = client.get(self.url)
                    body = answer.json() if answer.status_code == 200 else {}
                    if body and version in (None, body.get("version")):
                        if self.ready_url is None:
                            return
                        answer = client.get(self.ready_url)
                        if answer.status_code == 200:
                            return
                    seen = f"{answer.status_code} {answer.text[:200]}"
                    errors = errors + 1 if answer.status_code == 500 else 0
                except (httpx.HTTPError, ValueError) as exc:
                    seen = f"{type(exc).__name__}: {exc}"
                    errors = 0
                if self.broken_after and errors >= self.broken_after:
                    raise UpgradeError(
                        f"{answer.url} answered 500 {errors} times in a row: the release is "
                        f"broken (last: {seen})"
                    )
                if time.monotonic() > deadline:
                    ready = f" (and {self.ready_url} ready)" if self.ready_url else ""
                    raise UpgradeError(
                        f"{self.url} did not answer healthy with version {version}{ready} "
                        f"within {self.timeout:.0f} s (last: {seen})"
                    )
                time.sleep(self.every)
