"""The models this agent serves right now, swapped atomically.

A request takes a reference to one :class:`LoadedModel` and uses it to the
end, so a swap never disturbs a request in flight: the old model answers until
the last request holding it finishes, then it is garbage-collected.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agent.probation import Probation
from agent.runtime.base import ModelRuntime
from appliance.bundle.manifest import Manifest
from appliance.clock import utcnow
from appliance.errors import NotFoundError


@dataclass(frozen=True)
class LoadedModel:
    manifest: Manifest
    runtime: ModelRuntime
    folder: Path
    """The slot on disk (for an encrypted model, its sealed file, never the plain bundle)."""
    target_sha256: str | None = None
    """The TUF target it was installed from (None for bundles installed before TUF)."""
    reference: np.ndarray | None = None
    """The bundle's reference sample (training inputs), for drift tests."""
    probation: Probation | None = None
    """Set while a freshly installed version serves its first requests."""
    loaded_at: str = field(default_factory=lambda: utcnow().isoformat())

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> int:
        return self.manifest.version


class ModelRepository:
    """One default version per model (what a request naming no version gets), plus the
    extra versions A/B experiments need loaded beside it."""

    def __init__(self) -> None:
        self._models: dict[str, LoadedModel] = {}
        self._extra: dict[tuple[str, int], LoadedModel] = {}
        self._lock = threading.Lock()

    def get(self, name: str, version: int | None = None) -> LoadedModel:
        model = self._models.get(name)  # a dict read is atomic; no lock on the hot path
        if model is not None and (version is None or model.version == version):
            return model
        if version is not None:
            extra = self._extra.get((name, version))
            if extra is not None:
                return extra
        if model is None:
            raise NotFoundError(f"model {name!r} is not loaded on this agent")
        raise NotFoundError(
            f"model {name!r} version {version} is not loaded on this agent "
            f"(serving version {model.version})"
        )

    def serves(self, name: str) -> bool:
        """Whether a model of this name is loaded (any version)."""
        return name in self._models or any(n == name for n, _v in self._extra)

    def add_extra(self, model: LoadedModel) -> None:
        with self._lock:
            self._extra = {**self._extra, (model.name, model.version): model}

    def drop_extra(self, name: str, version: int) -> None:
        with self._lock:
            self._extra = {k: m for k, m in self._extra.items() if k != (name, version)}

    def loaded(self) -> set[tuple[str, int]]:
        """Every (model, version) loaded: defaults and extras."""
        return {(m.name, m.version) for m in self._models.values()} | set(self._extra)

    def extras(self) -> list[LoadedModel]:
        return sorted(self._extra.values(), key=lambda m: (m.name, m.version))

    def swap(self, model: LoadedModel) -> LoadedModel | None:
        """Make ``model`` the one that answers; return the one it replaced."""
        with self._lock:
            previous = self._models.get(model.name)
            self._models = {**self._models, model.name: model}
            return previous

    def all(self) -> list[LoadedModel]:
        return sorted(self._models.values(), key=lambda m: m.name)
