"""The sync loop: register with the hub, fetch what to run, install, report.

It runs in its own thread so that downloading, verifying and loading a model
never stalls inference on the event loop. An unreachable hub is normal (the
agent keeps serving its last good model); a refused bundle is reported to the
hub in the next heartbeat and not fetched again until the hub offers another.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field

from agent.identity import AgentIdentity
from agent.installer import InstallPolicy, install_archive
from agent.repository import ModelRepository
from agent.store import BundleStore
from appliance.errors import (
    ApplianceError,
    HubRejectedError,
    HubUnavailableError,
    IntegrityError,
    NotFoundError,
)
from appliance.fsutil import sha256_file
from appliance.hub_client import HubClient
from appliance.schemas import Assignment, Heartbeat, InstalledModel
from appliance.settings import AgentSettings

log = logging.getLogger(__name__)

RETRY_REFUSED_AFTER_S = 300.0
"""A bundle refused for a reason that might pass (disk full, load error) is retried after this."""


@dataclass
class SyncStatus:
    hub_reachable: bool = False
    last_sync_at: float | None = None
    last_error: str | None = None
    refused: dict[str, tuple[float, str]] = field(default_factory=dict)
    """Bundle SHA-256 → (when, why) for bundles this agent refused."""
    not_allowed: list[str] = field(default_factory=list)
    """Production models the hub's residency policy keeps from this agent, with the rule."""


class SyncWorker:
    def __init__(
        self,
        settings: AgentSettings,
        client: HubClient,
        store: BundleStore,
        repository: ModelRepository,
        policy: InstallPolicy,
        identity: AgentIdentity,
    ) -> None:
        self.settings = settings
        self.client = client
        self.store = store
        self.repository = repository
        self.policy = policy
        self.identity = identity
        self.status = SyncStatus()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="appliance-sync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self.client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.settings.sync_interval)

    def run_once(self) -> None:
        agent_id = self.identity.agent_id
        try:
            plan = self.client.assignments(agent_id)
            not_allowed = [f"{r.name} v{r.version}: {r.reason}" for r in plan.refused]
            if not_allowed != self.status.not_allowed:
                for line in not_allowed:
                    log.warning("hub's residency policy keeps %s from this agent", line)
                self.status.not_allowed = not_allowed
            for assignment in plan.models:
                if self._stop.is_set():
                    return
                self._apply(assignment)
            self.client.heartbeat(agent_id, self._heartbeat())
            if not self.status.hub_reachable:
                log.info(
                    "hub %s reachable; %d model(s) loaded",
                    self.client.base_url,
                    len(self.repository.all()),
                )
            self.status.hub_reachable = True
            self.status.last_sync_at = time.time()
        except HubRejectedError as exc:
            if exc.status_code in (401, 403):
                exc.hint = "the hub refuses this agent's identity: was it revoked? enrol it again"
            self._note_hub_trouble(exc)
        except HubUnavailableError as exc:
            self._note_hub_trouble(exc)

    def _note_hub_trouble(self, exc: ApplianceError) -> None:
        if self.status.hub_reachable or self.status.last_error != str(exc):
            log.warning("sync with hub failed, serving what is installed: %s", exc)
        self.status.hub_reachable = False
        self.status.last_error = str(exc)

    def _apply(self, assignment: Assignment) -> None:
        try:
            current = self.repository.get(assignment.name)
            if current.version == assignment.version:
                return
        except NotFoundError:
            pass  # not installed yet
        refused = self.status.refused.get(assignment.bundle_sha256)
        if refused and time.time() - refused[0] < RETRY_REFUSED_AFTER_S:
            return
        work = self.store.new_staging_dir()
        try:
            archive = work / "bundle.tar"
            self.client.download(
                assignment.bundle_path, archive, max_bytes=self.policy.max_bundle_bytes
            )
            digest, _ = sha256_file(archive)
            if digest != assignment.bundle_sha256:
                raise IntegrityError(
                    f"downloaded bundle's SHA-256 {digest[:16]}… is not the hub's "
                    f"{assignment.bundle_sha256[:16]}…"
                )
            model = install_archive(archive, self.store, self.repository, self.policy)
            log.info("now serving %s v%d on %s", model.name, model.version, model.runtime.kind)
            self.status.refused.pop(assignment.bundle_sha256, None)
            self.status.last_error = None
        except HubUnavailableError:
            raise
        except (ApplianceError, OSError) as exc:  # bad bundle, load failure, full disk
            reason = f"refused {assignment.name} v{assignment.version}: {exc}"
            log.error("%s; keeping the model that was serving", reason)
            self.status.refused[assignment.bundle_sha256] = (time.time(), reason)
            self.status.last_error = reason
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _heartbeat(self) -> Heartbeat:
        models = [
            InstalledModel(name=m.name, version=m.version, runtime=m.runtime.kind)
            for m in self.repository.all()
        ]
        recent = [
            why
            for when, why in self.status.refused.values()
            if time.time() - when < RETRY_REFUSED_AFTER_S
        ]
        return Heartbeat(
            models=models,
            health="degraded" if recent else "ok",
            detail="; ".join(recent + self.status.not_allowed) or None,
        )
