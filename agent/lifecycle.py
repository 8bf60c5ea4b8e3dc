"""What an agent process runs beside its requests, from start-up to shut-down.

The owner syncs with the hub, tests drift and sends serving summaries on schedules; a
serving process of ``--workers N`` follows the owner's installs and hands it its drift
rows and A/B outcomes (:mod:`agent.follower`, :mod:`agent.drift.spool`); every process
of such an agent shares its counts (:mod:`agent.peers`).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from functools import partial

from apscheduler.schedulers.background import BackgroundScheduler

from agent.core import AgentCore
from agent.drift.spool import RowSpool, take_spooled
from agent.metrics import ServingSummaries
from agent.status import share_of
from appliance.scheduling import run_every


class Lifecycle:
    def __init__(self, core: AgentCore) -> None:
        self.core = core
        self.serving = ServingSummaries(core.metrics)
        self.schedules: list[BackgroundScheduler] = []

    def start(self) -> None:
        core = self.core
        # Everything imported and loaded so far lives as long as the process: keep it out
        # of the garbage collector's scans so collections on the request path stay cheap.
        gc.collect()
        gc.freeze()
        if core.peers:
            core.peers.start(partial(share_of, core))
        if core.follower:  # a serving process: the owner tests drift and reports
            core.follower.start()
            if isinstance(core.inference.drift, RowSpool):  # rows for the owner's drift tests
                self._every(1.0, core.inference.drift.flush, "rows", "drift rows")
            # outcomes of experiment requests answered here
            self._every(core.settings.drift.check_s, self._flush_outcomes, "ab", "A/B outcomes")
            return
        self._every(core.settings.drift.check_s, self.check_drift, "drift", "drift tests")
        self._every(
            core.settings.serving.report_s, self.summarise_serving, "serving", "serving summaries"
        )
        if core.sync:
            core.sync.start()

    def stop(self) -> None:
        core = self.core
        core.lanes.close()  # queued requests are dropped; running ones finish
        if core.follower:
            core.follower.stop()
        if core.peers:
            core.peers.stop()
        for schedule in self.schedules:
            schedule.shutdown(wait=True)
        if core.sync:
            core.sync.stop()
        core.outbox.close()

    def check_drift(self) -> None:
        core = self.core
        core.drift.watch(core.repository.all() + core.repository.extras())
        if core.peers:  # the rows the serving processes saw
            take_spooled(core.peers.folder, core.drift)
        core.drift.check()
        self._flush_outcomes()

    def summarise_serving(self) -> None:
        self.serving.flush(self.core.outbox)

    def _flush_outcomes(self) -> None:
        self.core.router.flush(self.core.outbox)

    def _every(self, seconds: float, job: Callable[[], object], job_id: str, name: str) -> None:
        self.schedules.append(run_every(seconds / 60, job, job_id=job_id, name=name))
