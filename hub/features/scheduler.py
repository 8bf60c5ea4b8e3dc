"""Refreshing the online store on a schedule in the hub process (APScheduler 3)."""

from __future__ import annotations

import logging
from typing import Final

from apscheduler.schedulers.background import BackgroundScheduler

from appliance.errors import ConfigError
from appliance.scheduling import run_every
from hub.features.service import FeatureStore

log = logging.getLogger(__name__)

JOB_ID: Final = "features-materialize"


def run_materialization(store: FeatureStore) -> int:
    """Refresh every view already in the online store; a failure is logged, not raised."""
    try:
        return len(store.materialize_online_views())
    except Exception:  # a scheduled job must not die with the first bad view
        log.exception("scheduled feature materialisation failed")
        return 0


def start_materialize_scheduler(store: FeatureStore, minutes: float) -> BackgroundScheduler | None:
    """Start a daemon thread that re-materialises every ``minutes``; 0 turns it off.

    Runs never overlap and missed runs collapse into one; stop it with
    ``scheduler.shutdown()``.
    """
    if minutes == 0:
        return None
    if minutes < 0:
        raise ConfigError(f"feature materialisation interval must not be negative, not {minutes}")
    return run_every(
        minutes,
        run_materialization,
        store,
        job_id=JOB_ID,
        name="materialise feature views into the online store",
    )
