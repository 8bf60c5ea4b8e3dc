"""What the hub runs beside its requests, from start-up to shut-down: the audit log's
signed checkpoints, re-signing update metadata before it expires, judging rollout rings,
ending experiments that ran their longest, requeueing lost workers' training jobs, the
retraining schedules and the online feature store's refresh."""

from __future__ import annotations

from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler

from appliance.scheduling import run_every
from appliance.settings import HubSettings
from hub.audit.scheduler import run_checkpoint, start_checkpoint_scheduler
from hub.features.scheduler import start_materialize_scheduler
from hub.services import HubServices

TIMESTAMP_CHECK_MINUTES = 60.0
"""How often the hub checks whether its TUF metadata needs re-signing."""


class HubLifecycle:
    def __init__(self, settings: HubSettings, services: HubServices) -> None:
        self.settings = settings
        self.services = services
        self.schedules: list[BackgroundScheduler] = []

    def start(self) -> None:
        svc, settings = self.services, self.settings
        self.schedules.append(
            start_checkpoint_scheduler(svc.engine, svc.audit, svc.checkpoint_minutes)
        )
        self._every(
            TIMESTAMP_CHECK_MINUTES * 60,
            svc.updates.refresh,
            "tuf-refresh",
            "re-sign TUF metadata before it expires",
        )
        self._every(
            settings.releases.rollout_check_s,
            svc.rollouts.evaluate,
            "rollout-gates",
            "judge rollout rings",
        )
        self._every(
            settings.releases.rollout_check_s,
            svc.agent_upgrades.evaluate,
            "agent-upgrade-gates",
            "judge agent upgrade rings",
        )
        self._every(
            settings.releases.rollout_check_s,
            svc.experiments.expire,
            "experiment-expiry",
            "stop experiments that ran their longest",
        )
        self._every(
            settings.schedule.training_lease_s / 2,
            svc.training.requeue_expired,
            "training-leases",
            "requeue training jobs of lost workers",
        )
        svc.schedules.start()
        features = start_materialize_scheduler(svc.features, svc.features_materialize_minutes)
        if features is not None:
            self.schedules.append(features)

    def stop(self) -> None:
        for schedule in self.schedules:
            schedule.shutdown(wait=True)
        self.services.schedules.stop()
        run_checkpoint(self.services.engine, self.services.audit)  # sign the head on the way out
        self.services.engine.dispose()

    def _every(self, seconds: float, job: Callable[[], object], job_id: str, name: str) -> None:
        self.schedules.append(run_every(seconds / 60, job, job_id=job_id, name=name))
