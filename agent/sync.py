"""The sync loop: read the signed metadata, install what it offers, watch probations, report.

It runs in its own thread so that downloading, verifying and loading a model
never stalls inference on the event loop. An unreachable hub is normal (the
agent keeps serving its last good model). Metadata that fails TUF
verification changes nothing and is reported; a refused target is remembered
by its SHA-256 and not fetched again until the hub publishes another.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from tuf.ngclient.fetcher import FetcherInterface

from agent.access import DataPlaneAccess
from agent.experiments import ExperimentRouter
from agent.identity import AgentIdentity
from agent.installer import DeviceKey, InstallPolicy, load_slot, stage
from agent.outbox import Outbox
from agent.probation import Probation, ProbationPolicy
from agent.repository import LoadedModel, ModelRepository
from agent.self_upgrade import SelfUpgrade
from agent.store import BundleStore
from agent.updates.fetchers import FetchLimits, HubFetcher
from agent.updates.trusted import Offer, TrustedUpdates, metadata_dir
from appliance import __version__, logs
from appliance.client.hub import HubClient
from appliance.errors import (
    ApplianceError,
    BundleError,
    HubRejectedError,
    HubUnavailableError,
    ModelLoadError,
    NotFoundError,
)
from appliance.settings import AgentSettings
from appliance.wire.fleet import AgentReport, Heartbeat, InstalledModel, ReportKind

log = logging.getLogger(__name__)

RETRY_AFTER_S = 300.0
"""A target that failed for a reason that may pass (disk full, hub gone mid-download)."""


@dataclass
class SyncStatus:
    hub_reachable: bool = False
    last_sync_at: float | None = None
    last_error: str | None = None
    update_error: str | None = None
    """Why the last metadata refresh was refused (stale, rolled back, unsigned), if it was."""
    problems: dict[str, str] = field(default_factory=dict)
    """Model name → why the version the hub offers is not serving here."""
    not_allowed: list[str] = field(default_factory=list)
    """Production models the hub's residency policy keeps from this agent, with the rule."""
    notes: list[str] = field(default_factory=list)
    """Roll-backs and overrides to tell the hub once."""


@dataclass
class _OnProbation:
    model: LoadedModel
    previous: LoadedModel | None
    probation: Probation


class SyncWorker:
    def __init__(
        self,
        settings: AgentSettings,
        client: HubClient,
        store: BundleStore,
        repository: ModelRepository,
        policy: InstallPolicy,
        identity: AgentIdentity,
        *,
        key: DeviceKey,
        root: bytes,
        probation: ProbationPolicy | None = None,
        limits: FetchLimits | None = None,
        fetcher: FetcherInterface | None = None,
        outbox: Outbox | None = None,
        router: ExperimentRouter | None = None,
        access: DataPlaneAccess | None = None,
        elsewhere: Callable[[str, int], tuple[float, float]] | None = None,
    ) -> None:
        self.settings = settings
        self.elsewhere = elsewhere
        """(successes, failures) of a model version in the other processes (--workers)."""
        self.client = client
        self.store = store
        self.repository = repository
        self.policy = policy
        self.identity = identity
        self.key = key
        self.root = root
        self.probation_policy = probation or ProbationPolicy()
        self.fetcher = fetcher or HubFetcher(client, limits)
        self.outbox = outbox
        self.router = router
        self.access = access
        self.status = SyncStatus()
        self.self_upgrade = SelfUpgrade(settings.data_dir, settings.upgrade_command or None)
        self._on_probation: dict[str, _OnProbation] = {}
        self._retry_at: dict[str, float] = {}
        self._stamp = store.stamp()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="appliance-sync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop syncing. A version on probation with no failure so far is not blamed for
        the stop: it is set aside (the last good one serves after a restart) and may be
        installed again; only a crash mid-probation refuses it (see BundleStore.recover)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        with self.store.install_lock():
            for name, trial in list(self._on_probation.items()):
                if trial.probation.verdict() != "fail":
                    self.store.set_aside(name, trial.model.version)
        self.client.close()

    def _run(self) -> None:
        next_sync = 0.0
        while not self._stop.is_set():
            # one request id a round: its lines here and the hub's for its calls share it
            logs.request_id.set(logs.new_request_id())
            try:
                self.check_probations()
                if time.monotonic() >= next_sync:
                    self.run_once()
                    next_sync = time.monotonic() + self.settings.link.sync_interval
            except Exception:  # a bug must not end syncing for the life of the process
                log.exception("sync round failed; trying again next round")
                next_sync = time.monotonic() + self.settings.link.sync_interval
            self._stop.wait(1.0 if self._on_probation else self.settings.link.sync_interval)

    # -- one round ----------------------------------------------------------------------

    def run_once(self) -> None:
        self.reload_if_changed()
        self._reload_keys()
        try:
            self._update()
            self.status.update_error = None
        except HubUnavailableError as exc:
            self._note_hub_trouble(exc)
            return
        except BundleError as exc:  # metadata refused: stale, rolled back, unsigned, mixed
            if self.status.update_error != str(exc):
                log.error("update metadata refused, keeping what is installed: %s", exc)
            self.status.update_error = str(exc)
        self._report()

    def _update(self) -> None:
        hub = self.client.base_url
        updates = TrustedUpdates(
            self.settings.data_dir,
            root=self.root,
            fetcher=self.fetcher,
            metadata_url=f"{hub}/tuf/metadata/",
            targets_url=f"{hub}/tuf/targets/",
            zone=self.identity.zone,
            group=self.identity.group,
            agent_id=self.identity.agent_id,
        )
        with self.store.install_lock():
            index = updates.index()
            self._adopt_defaults(
                index.defaults_for(self.identity.agent_id), index.wanted(self.identity.agent_id)
            )
            offers = updates.offers(self.repository.loaded())
            self.status.problems = {
                name: why
                for name, why in self.status.problems.items()
                if any(o.name == name for o in offers)
            }
            for offer in offers:
                if self._stop.is_set():
                    return
                self._apply(updates, offer)
            self._drop_unwanted_extras(index.wanted(self.identity.agent_id))
        if self.router is not None:
            self.router.update(index.experiments)
        if self.access is not None:
            self.access.update(index.keys)

    def _reload_keys(self) -> None:
        """Keys an offline import verified since the last look (the hub may be away)."""
        if self.access is not None:
            self.access.reload(metadata_dir(self.settings.data_dir))

    def _report(self) -> None:
        try:
            plan = self.client.assignments(self.identity.agent_id)
            self.status.not_allowed = [f"{r.name} v{r.version}: {r.reason}" for r in plan.refused]
            self.self_upgrade.consider(self.client, plan.software)
            self.client.heartbeat(self.identity.agent_id, self._heartbeat())
            self.status.notes.clear()
            self.deliver_reports()
            if not self.status.hub_reachable:
                log.info(
                    "hub %s reachable; %d model(s) loaded",
                    self.client.base_url,
                    len(self.repository.all()),
                )
            self.status.hub_reachable = True
            self.status.last_sync_at = time.time()
            self.status.last_error = None
        except HubRejectedError as exc:
            if exc.status_code in (401, 403):
                exc.hint = "the hub refuses this agent's identity: was it revoked? enrol it again"
            self._note_hub_trouble(exc)
        except HubUnavailableError as exc:
            self._note_hub_trouble(exc)

    def deliver_reports(self, batch: int = 200) -> int:
        """Send what waits in the outbox; forget each report once the hub holds it."""
        sent = 0
        while self.outbox is not None and not self._stop.is_set():
            pending = self.outbox.pending(batch)
            if not pending:
                break
            reports = [
                AgentReport(key=r.key, kind=cast(ReportKind, r.kind), body=r.body) for r in pending
            ]
            answer = self.client.send_reports(self.identity.agent_id, reports)
            self.outbox.acknowledge(answer.accepted)
            moved = self.outbox.dead_letter([(r.key, r.reason) for r in answer.refused])
            sent += len(answer.accepted)
            if len(answer.accepted) + moved < len(pending):
                break  # the hub kept some back: try again next round
        return sent

    def _note_hub_trouble(self, exc: ApplianceError) -> None:
        if self.status.hub_reachable or self.status.last_error != str(exc):
            log.warning("sync with hub failed, serving what is installed: %s", exc)
        self.status.hub_reachable = False
        self.status.last_error = str(exc)

    # -- installing -------------------------------------------------------------------------

    def _adopt_defaults(self, defaults: dict[str, int], wanted: set[tuple[str, int]]) -> None:
        """A version already loaded beside the default becomes the default at once: an
        experiment's winner, or a blue-green rollout's switch. The version it replaces
        stays loaded beside it while the index still wants it (blue-green's way back)."""
        extras = {(m.name, m.version): m for m in self.repository.extras()}
        for name, version in defaults.items():
            extra = extras.get((name, version))
            if extra is None or name in self._on_probation:
                continue
            self.store.commit(name, version, extra.target_sha256)
            self.store.drop_extra(name, version)
            replaced = self.repository.swap(extra)
            self.repository.drop_extra(name, version)
            if (
                replaced is not None
                and replaced.target_sha256 is not None
                and (name, replaced.version) in wanted
            ):
                self.store.add_extra(name, replaced.version, replaced.target_sha256)
                self.repository.add_extra(replaced)
            log.info("%s v%d, loaded beside, is now the default", name, version)

    def _drop_unwanted_extras(self, wanted: set[tuple[str, int]]) -> None:
        for model in self.repository.extras():
            if (model.name, model.version) not in wanted:
                self.repository.drop_extra(model.name, model.version)
                self.store.drop_extra(model.name, model.version)
                log.info("%s v%d no longer needed by an experiment: unloaded", *_key(model))

    def _apply(self, updates: TrustedUpdates, offer: Offer) -> None:
        if offer.default and offer.name in self._on_probation:
            return
        sha = offer.target_sha256
        refused = self.store.refused_reason(sha)
        if refused:
            self.status.problems[offer.name] = refused
            return
        if time.monotonic() < self._retry_at.get(sha, 0.0):
            return
        work = self.store.new_staging_dir()
        try:
            target = updates.download(offer, work / "target")
            model = stage(target, offer, self.key, self.store, self.policy)
        except HubUnavailableError:
            self._retry_at[sha] = time.monotonic() + RETRY_AFTER_S
            raise
        except (BundleError, ModelLoadError) as exc:  # bad or hostile: never again
            reason = f"refused {offer.name} v{offer.version}: {exc}"
            log.error("%s; keeping the model that was serving", reason)
            self.store.refuse(sha, reason)
            self.status.problems[offer.name] = reason
            return
        except (ApplianceError, OSError) as exc:  # full disk and the like: later
            reason = f"could not install {offer.name} v{offer.version}: {exc}"
            log.error("%s; keeping the model that was serving, retrying later", reason)
            self._retry_at[sha] = time.monotonic() + RETRY_AFTER_S
            self.status.problems[offer.name] = reason
            return
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.status.problems.pop(offer.name, None)
        if offer.default:
            self._switch(model, sha)
        else:
            model = dataclasses.replace(model, target_sha256=sha)
            self.store.add_extra(model.name, model.version, sha)
            self.repository.add_extra(model)
            log.info("loaded %s v%d beside the default (experiment or standby)", *_key(model))

    def _switch(self, model: LoadedModel, sha: str) -> None:
        try:
            previous: LoadedModel | None = self.repository.get(model.name)
        except NotFoundError:
            previous = None
        if previous is None:  # nothing to fall back to: no probation
            self.store.commit(model.name, model.version, sha)
            self.repository.swap(model)
            log.info("now serving %s v%d on %s", model.name, model.version, model.runtime.kind)
            return
        counted = self.elsewhere
        probation = Probation(
            self.probation_policy,
            elsewhere=(lambda: counted(*_key(model))) if counted else lambda: (0.0, 0.0),
        )
        self.store.begin(model.name, model.version, sha)
        on_trial = dataclasses.replace(model, target_sha256=sha, probation=probation)
        self.repository.swap(on_trial)
        self._on_probation[model.name] = _OnProbation(on_trial, previous, probation)
        log.info(
            "serving %s v%d on probation (v%d kept to fall back to)",
            model.name,
            model.version,
            previous.version,
        )

    def check_probations(self) -> None:
        if not self._on_probation:
            return
        with self.store.install_lock():
            self._check_probations_locked()

    def _check_probations_locked(self) -> None:
        for name, trial in list(self._on_probation.items()):
            verdict = trial.probation.verdict()
            if verdict is None:
                continue
            del self._on_probation[name]
            version = trial.model.version
            if verdict == "pass":
                self.store.commit(name, version, trial.model.target_sha256)
                # Off probation: requests stop paying for the bookkeeping.
                self.repository.swap(dataclasses.replace(trial.model, probation=None))
                log.info("%s v%d passed probation; now the last good version", name, version)
                continue
            back_to = trial.previous.version if trial.previous else "-"
            reason = f"rolled back {name} v{version} to v{back_to}: {trial.probation.summary()}"
            if trial.previous is not None:
                self.repository.swap(trial.previous)
            self.store.abandon(name, version, reason)
            self.status.problems[name] = reason
            self.status.notes.append(reason)
            log.error("%s", reason)

    def reload_if_changed(self) -> None:
        """Serve what another process (an offline import) installed since the last look."""
        with self.store.install_lock():
            self._reload_locked()

    def _reload_locked(self) -> None:
        stamp = self.store.stamp()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        for name, version in self.store.current().items():
            if name in self._on_probation:
                continue
            try:
                if self.repository.get(name).version == version:
                    continue
            except NotFoundError:
                pass
            try:
                model = load_slot(self.store.path(name, version), self.key, self.store, self.policy)
            except (ApplianceError, OSError) as exc:
                log.error("could not load %s v%d installed offline: %s", name, version, exc)
                continue
            self.repository.swap(model)
            log.info("now serving %s v%d (installed from an update bundle)", name, version)

    def _heartbeat(self) -> Heartbeat:
        models = [
            InstalledModel(name=m.name, version=m.version, runtime=m.runtime.kind)
            for m in self.repository.all()
        ] + [
            InstalledModel(name=m.name, version=m.version, runtime=m.runtime.kind, state="standby")
            for m in self.repository.extras()
        ]
        trouble = list(self.status.problems.values())
        refused = self.outbox.dead_letter_count() if self.outbox is not None else 0
        if refused:
            trouble.append(f"the hub refused {refused} report(s); see /agent/status")
        if self.status.update_error:
            trouble.insert(0, f"update metadata refused: {self.status.update_error}")
        if self.self_upgrade.problem:
            trouble.append(self.self_upgrade.problem)
        lines = trouble + [n for n in self.status.notes if n not in trouble]
        return Heartbeat(
            models=models,
            health="degraded" if trouble else "ok",
            detail="; ".join(lines + self.status.not_allowed) or None,
            software_version=__version__,
            upgrade_failed=self.self_upgrade.failed,
            upgrading=self.self_upgrade.upgrading,
        )


def _key(model: LoadedModel) -> tuple[str, int]:
    return model.name, model.version
