"""A serving process serves what the owning process installed.

With ``--workers N`` the agent runs N processes on one port
(:mod:`appliance.cli.serving_processes`). The first, the owner, syncs with the
hub, installs, runs probations, tests drift and reports. The others only answer
requests; each follows the owner through what it leaves on disk:

- ``state.json`` (:class:`agent.store.BundleStore`): the version each model
  serves (the one on probation while there is one, else the current one, else
  the previous one) and the versions kept beside it for A/B experiments, loaded
  from their verified slots exactly as the owner loads them at start-up;
- the trusted metadata folder: the inference keys and the running experiments
  from the last index the owner verified.

It looks once a second (two ``stat`` calls when nothing changed) and reads
under the store's shared lock, so an install is never seen half done. When the
owner is gone (its process exited), the serving process stops too.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from agent.access import DataPlaneAccess
from agent.experiments import ExperimentRouter
from agent.installer import DeviceKey, InstallPolicy, fallbacks, load_slot
from agent.repository import LoadedModel, ModelRepository
from agent.store import BundleStore, Slots
from agent.updates.trusted import cached_experiments, metadata_dir
from appliance.errors import ApplianceError

log = logging.getLogger(__name__)

POLL_S = 1.0
"""How often a serving process looks for the owner's changes."""


class InstallFollower:
    def __init__(
        self,
        store: BundleStore,
        repository: ModelRepository,
        policy: InstallPolicy,
        key: DeviceKey,
        access: DataPlaneAccess,
        router: ExperimentRouter,
        *,
        owner_pid: int | None = None,
        on_owner_gone: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.repository = repository
        self.policy = policy
        self.key = key
        self.access = access
        self.router = router
        self.owner_pid = os.getppid() if owner_pid is None else owner_pid
        self.on_owner_gone = on_owner_gone or (lambda: os.kill(os.getpid(), signal.SIGTERM))
        self._metadata = metadata_dir(store.root)
        self._seen: tuple[int, int] | None = None
        self.targets: dict[tuple[str, int], str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="appliance-follow", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10.0)

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            if os.getppid() != self.owner_pid:
                log.error("the agent's owning process %d is gone; stopping", self.owner_pid)
                self.on_owner_gone()
                return
            try:
                self.follow()
            except Exception:  # a bug must not leave this process serving stale models
                log.exception("could not follow the owner's installs; trying again")
                self._seen = None

    def follow(self) -> bool:
        """Catch up with the owner; whether anything had changed since the last look."""
        seen = (self.store.stamp(), _mtime(self._metadata))
        if seen == self._seen:
            return False
        with self.store.reading_lock():
            self._seen = (self.store.stamp(), _mtime(self._metadata))
            self._follow_models()
        self.access.reload(self._metadata)
        self.router.update(cached_experiments(self.store.root))
        return True

    def _follow_models(self) -> None:
        models = self.store.state().models
        self.targets = {
            (name, int(version)): sha
            for name, slots in models.items()
            for version, sha in slots.targets.items()
        }
        for name, slots in models.items():
            self._follow_default(name, slots)
            wanted = set(slots.extra)
            for extra in self.repository.extras():
                if extra.name == name and extra.version not in wanted:
                    self.repository.drop_extra(name, extra.version)
            loaded = self.repository.loaded()
            for version in sorted(wanted - {v for n, v in loaded if n == name}):
                try:
                    self.repository.add_extra(self._load(name, version))
                except (ApplianceError, OSError) as exc:
                    log.error("could not load %s v%d for an experiment: %s", name, version, exc)

    def _follow_default(self, name: str, slots: Slots) -> None:
        try:
            serving: int | None = self.repository.get(name).version
        except ApplianceError:
            serving = None
        # the one on probation (the owner serves it), the current one, the previous one
        for version in fallbacks(slots.pending, slots.current, slots.previous):
            if version == serving:
                return
            try:
                self.repository.swap(self._load(name, version))
            except (ApplianceError, OSError) as exc:
                log.error("could not load %s v%d the agent installed: %s", name, version, exc)
                continue
            log.info("now serving %s v%d, as the owning process does", name, version)
            return

    def _load(self, name: str, version: int) -> LoadedModel:
        model = load_slot(self.store.path(name, version), self.key, self.store, self.policy)
        return dataclasses.replace(model, target_sha256=self.targets.get((name, version)))


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0
