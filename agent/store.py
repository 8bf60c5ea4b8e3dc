"""Verified bundles on the agent's disk, and which one serves: two slots and a pending marker.

Layout under the agent's data directory::

    bundles/<name>/<version>/   a verified, unpacked bundle (never changed once there)
    state.json                  per model: current, previous and pending versions;
                                targets refused, by SHA-256, with the reason
    staging/                    work folders for downloads and unpacking
    install.lock                held by whoever installs (the agent or an offline import)

Each model has two slots, ``current`` (the last good version) and ``previous``
(the one before it). A new version is placed on disk whole, then recorded as
``pending`` while it serves its first requests; only when it passes is it
made current. ``state.json`` is replaced atomically (file and folder fsynced),
so after a crash at any instant it names versions that are complete on disk.
A restart that finds a pending version serves ``current`` and records the
pending one as refused: a model that brings the agent down is not retried
until the hub publishes another.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.errors import StorageError
from appliance.fsutil import atomic_write_bytes, file_lock, fsync_dir

MAX_REFUSED = 64
"""Refused targets remembered; the oldest are forgotten first."""


@dataclass
class Slots:
    current: int | None = None
    previous: int | None = None
    pending: int | None = None
    extra: list[int] = field(default_factory=list)
    """Versions kept loaded beside the default for A/B experiments."""
    targets: dict[str, str] = field(default_factory=dict)
    """Version (as text) → SHA-256 of the target it was installed from."""


@dataclass
class StoreState:
    models: dict[str, Slots] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    """Target SHA-256 → why it was refused (not fetched again)."""

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "format": 2,
                "models": {n: vars(s) for n, s in sorted(self.models.items())},
                "refused": self.refused,
            },
            indent=2,
        ).encode()

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> StoreState:
        if "models" not in raw:  # format 1: {"current": {...}, "previous": {...}}
            models = {
                name: Slots(current=version, previous=raw.get("previous", {}).get(name))
                for name, version in raw.get("current", {}).items()
            }
            return cls(models=models)
        return cls(
            models={n: Slots(**s) for n, s in raw["models"].items()},
            refused=dict(raw.get("refused", {})),
        )


class BundleStore:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir
        self.bundles = data_dir / "bundles"
        self.staging = data_dir / "staging"
        self.state_file = data_dir / "state.json"
        self.lock_file = data_dir / "install.lock"
        for folder in (self.bundles, self.staging):
            folder.mkdir(parents=True, exist_ok=True)

    def clear_staging(self) -> None:
        """Remove leftovers of an interrupted install (call with the install lock held)."""
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def install_lock(self) -> Iterator[None]:
        """One installer at a time across processes (the agent and ``bundle import``)."""
        with file_lock(self.lock_file):
            yield

    @contextlib.contextmanager
    def reading_lock(self) -> Iterator[None]:
        """Read the state and load its bundles while no installer changes them (serving
        processes, :mod:`agent.follower`); readers do not wait for one another."""
        with file_lock(self.lock_file, shared=True):
            yield

    def new_staging_dir(self) -> Path:
        return Path(tempfile.mkdtemp(dir=self.staging))

    # -- state ----------------------------------------------------------------------

    def state(self) -> StoreState:
        try:
            return StoreState.from_json(json.loads(self.state_file.read_text()))
        except FileNotFoundError:
            return StoreState()
        except (json.JSONDecodeError, TypeError, AttributeError):
            # Only a hand edit can do this (writes are atomic); start clean rather than crash.
            return StoreState()

    def stamp(self) -> int:
        """Changes whenever another process rewrites the state (for reload checks)."""
        try:
            return self.state_file.stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def _save(self, state: StoreState) -> None:
        try:
            atomic_write_bytes(self.state_file, state.to_json())
        except OSError as exc:
            raise StorageError(
                f"could not record the agent's state: {exc.strerror or exc}",
                hint="free space in the agent's data directory",
            ) from exc

    def current(self) -> dict[str, int]:
        return {n: s.current for n, s in self.state().models.items() if s.current is not None}

    def path(self, name: str, version: int) -> Path:
        return self.bundles / name / str(version)

    def refused_reason(self, target_sha256: str) -> str | None:
        return self.state().refused.get(target_sha256)

    # -- the install steps ----------------------------------------------------------

    def place(self, verified: Path, name: str, version: int) -> Path:
        """Move a verified staging folder into its slot (same file system: a rename)."""
        final = self.path(name, version)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            shutil.rmtree(final)
        os.replace(verified, final)
        fsync_dir(final.parent)
        return final

    def begin(self, name: str, version: int, target_sha256: str) -> None:
        """Record ``version`` as pending: on probation, not yet the one to return to."""
        state = self.state()
        slots = state.models.setdefault(name, Slots())
        slots.pending = version
        slots.targets[str(version)] = target_sha256
        self._save(state)

    def commit(self, name: str, version: int, target_sha256: str | None = None) -> None:
        """Make ``version`` current; the old current becomes previous; prune the rest."""
        state = self.state()
        slots = state.models.setdefault(name, Slots())
        if slots.current is not None and slots.current != version:
            slots.previous = slots.current
        slots.current = version
        slots.pending = None
        if target_sha256:
            slots.targets[str(version)] = target_sha256
        keep = {slots.current, slots.previous, *slots.extra}
        slots.targets = {v: t for v, t in slots.targets.items() if int(v) in keep}
        self._save(state)
        self._prune(name, keep)

    def add_extra(self, name: str, version: int, target_sha256: str) -> None:
        """Keep ``version`` (already placed) installed beside the default, for an experiment."""
        state = self.state()
        slots = state.models.setdefault(name, Slots())
        if version not in slots.extra:
            slots.extra.append(version)
        slots.targets[str(version)] = target_sha256
        self._save(state)

    def drop_extra(self, name: str, version: int) -> None:
        state = self.state()
        slots = state.models.get(name)
        if slots is None or version not in slots.extra:
            return
        slots.extra.remove(version)
        keep = {slots.current, slots.previous, slots.pending, *slots.extra}
        if version not in keep:
            slots.targets.pop(str(version), None)
        self._save(state)
        self._prune(name, keep)

    def abandon(self, name: str, version: int, reason: str) -> None:
        """Drop a pending version: refuse its target from now on and free its slot."""
        state = self.state()
        slots = state.models.get(name)
        if slots is not None:
            target = slots.targets.pop(str(version), None)
            if slots.pending == version:
                slots.pending = None
            if target:
                _remember_refusal(state, target, reason)
            self._save(state)
            self._prune(name, {slots.current, slots.previous, *slots.extra})

    def set_aside(self, name: str, version: int) -> None:
        """Clear a pending version without refusing it (a clean stop during probation)."""
        state = self.state()
        slots = state.models.get(name)
        if slots is not None and slots.pending == version:
            slots.pending = None
            slots.targets.pop(str(version), None)
            self._save(state)
            self._prune(name, {slots.current, slots.previous, *slots.extra})

    def refuse(self, target_sha256: str, reason: str) -> None:
        state = self.state()
        _remember_refusal(state, target_sha256, reason)
        self._save(state)

    def recover(self) -> list[str]:
        """At start-up: a version still pending did not survive its probation; roll it back."""
        notes = []
        for name, slots in self.state().models.items():
            if slots.pending is not None:
                note = (
                    f"{name} v{slots.pending} was on probation when the agent stopped; "
                    f"rolled back to v{slots.current}"
                )
                self.abandon(name, slots.pending, note)
                notes.append(note)
        return notes

    def _prune(self, name: str, keep: set[int | None]) -> None:
        folder = self.bundles / name
        if not folder.is_dir():
            return
        for child in folder.iterdir():
            if child.name.isdigit() and int(child.name) not in keep:
                shutil.rmtree(child, ignore_errors=True)


def _remember_refusal(state: StoreState, target_sha256: str, reason: str) -> None:
    state.refused.pop(target_sha256, None)
    state.refused[target_sha256] = reason
    while len(state.refused) > MAX_REFUSED:
        state.refused.pop(next(iter(state.refused)))
