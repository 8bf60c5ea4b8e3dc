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
    """The hub's ``/health``: 200 with the release's version in its answer."""
    timeout: float = 120.0
    ca: Path | None = None
    """Check the service's certificate against this CA (loopback only without one)."""

    def wait(self, version: str | None) -> None:
        """Return once the service answers healthy (with ``version``, unless None); raise at
        the deadline."""
        deadline = time.monotonic() + self.timeout
        seen = "no answer"
        verify: str | bool = str(self.ca) if self.ca else False
        with httpx.Client(timeout=5.0, verify=verify) as client:
            while True:
                try:
                    answer = client.get(self.url)
                    body = answer.json() if answer.status_code == 200 else {}
                    if body and version in (None, body.get("version")):
                        return
                    seen = f"{answer.status_code} {answer.text[:200]}"
                except (httpx.HTTPError, ValueError) as exc:
                    seen = f"{type(exc).__name__}: {exc}"
                if time.monotonic() > deadline:
                    raise UpgradeError(
                        f"{self.url} did not answer healthy with version {version} "
                        f"within {self.timeout:.0f} s (last: {seen})"
                    )
                time.sleep(1.0)
