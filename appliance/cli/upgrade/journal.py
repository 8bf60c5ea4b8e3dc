"""The record of an upgrade in progress (``upgrade.json`` under the installation root).

Written, atomically, before each step that changes something, and removed when the upgrade
ends, either way. Found at the start of a later upgrade, it means the last one was cut off
(power, ``kill -9``): nothing more happens until ``appliance upgrade --recover`` has put
the release and the data it names back.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path

from appliance.cli.upgrade.errors import UpgradeError
from appliance.clock import iso_utc, utcnow
from appliance.fsutil import atomic_write_bytes


class Phase(StrEnum):
    STOPPING = "stopping"
    """Services being stopped: nothing written yet."""
    MIGRATING = "migrating"
    """The data backed up (``backup``), the new release changing it: restore the backup
    to go back."""
    SWITCHED = "switched"
    """``venv`` points at the new release; starting and checking it."""


@dataclass(frozen=True)
class Journal:
    release: str
    """What is being installed (``appliance-hub-0.2.0``)."""
    old: str
    """The virtual environment that ran before."""
    new: str
    """The new release's virtual environment."""
    old_previous: str | None
    """What ``venv.previous`` pointed at before."""
    phase: Phase
    backup: str | None = None
    started_at: str = ""

    def at(self, path: Path, phase: Phase, **changes: str | None) -> Journal:
        """Record that the upgrade reached ``phase`` (and ``changes``), then return it."""
        entry = replace(self, phase=phase, **changes)  # type: ignore[arg-type]
        body = {**asdict(entry), "phase": str(entry.phase)}
        atomic_write_bytes(path, json.dumps(body, indent=2).encode() + b"\n", mode=0o600)
        return entry

    @staticmethod
    def begin(path: Path, release: str, old: Path, new: Path, previous: Path | None) -> Journal:
        start = Journal(
            release=release,
            old=str(old),
            new=str(new),
            old_previous=None if previous is None else str(previous),
            phase=Phase.STOPPING,
            started_at=iso_utc(utcnow()),
        )
        return start.at(path, Phase.STOPPING)

    @staticmethod
    def read(path: Path) -> Journal | None:
        try:
            body = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise UpgradeError(f"cannot read the upgrade journal {path}: {exc}") from exc
        return Journal(**{**body, "phase": Phase(body["phase"])})
