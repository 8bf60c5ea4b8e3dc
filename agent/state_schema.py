"""The schema version of an agent's state on disk, and migrating it forward.

An agent's data directory (identity, install slots in ``state.json``, bundles, keys,
outbox) outlives its software: an upgrade must read what the last release wrote.
``state_schema.json`` records the layout's version; at start the owning process runs the
migrations from it to :data:`CURRENT`, one at a time, writing the version after each,
so a migration interrupted by a crash is run again (each must be safe to rerun).

Version 1 is the layout of release 0.1.0, which wrote no version: a data directory with
its files and no ``state_schema.json`` is taken as version 1. State written by a newer
release is refused, not guessed at. The outbox's SQLite file versions its own tables the
same way with ``PRAGMA user_version`` (:mod:`agent.outbox`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from agent.identity import IDENTITY_FILE
from agent.outbox import OUTBOX_FILE
from appliance import __version__
from appliance.errors import ConfigError
from appliance.fsutil import atomic_write_bytes

log = logging.getLogger(__name__)

SCHEMA_FILE = "state_schema.json"
CURRENT = 1
BEFORE_VERSIONS = (IDENTITY_FILE, "state.json", OUTBOX_FILE, "bundles")
"""What release 0.1.0 left in a data directory (which then holds version 1)."""

Migration = Callable[[Path], None]
MIGRATIONS: dict[int, Migration] = {}
"""The step to each version from the one before it (none yet: version 1 is the first)."""


def found_version(data_dir: Path) -> int | None:
    """The state's version; ``None`` for a directory no agent has written to."""
    path = data_dir / SCHEMA_FILE
    if path.exists():
        try:
            return int(json.loads(path.read_text())["schema"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{path} is not a state version this agent can read: {exc}",
                hint="restore the data directory from a backup, or enrol the agent anew",
            ) from exc
    if any((data_dir / name).exists() for name in BEFORE_VERSIONS):
        return 1
    return None


def check(data_dir: Path) -> int | None:
    """Refuse state a newer release wrote; the version found otherwise."""
    found = found_version(data_dir)
    if found is not None and found > CURRENT:
        raise ConfigError(
            f"the agent's state in {data_dir} has version {found}, newer than this "
            f"release's {CURRENT}: a newer release wrote it",
            hint="run that release again, or restore the data directory from a backup",
        )
    return found


def prepare(data_dir: Path) -> int:
    """Bring the state to :data:`CURRENT` (a new directory is stamped with it)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    found = check(data_dir)
    if found is None:
        _write(data_dir, CURRENT)
        return CURRENT
    for version in range(found + 1, CURRENT + 1):
        log.warning("migrating the agent's state in %s to version %d", data_dir, version)
        MIGRATIONS[version](data_dir)
        _write(data_dir, version)
    if not (data_dir / SCHEMA_FILE).exists():
        _write(data_dir, found)  # release 0.1.0's layout, now named
    return CURRENT


def _write(data_dir: Path, version: int) -> None:
    body = {"schema": version, "written_by": __version__}
    atomic_write_bytes(data_dir / SCHEMA_FILE, json.dumps(body).encode() + b"\n")
