"""Background jobs on an interval (APScheduler), started and stopped with a service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler


def run_every(
    minutes: float, job: Callable[..., Any], *args: Any, job_id: str, name: str
) -> BackgroundScheduler:
    """Start a daemon scheduler that calls ``job(*args)`` every ``minutes``.

    Runs never overlap and missed runs collapse into one; stop it with
    ``scheduler.shutdown()``.
    """
    scheduler = BackgroundScheduler(timezone=UTC, daemon=True)
    scheduler.add_job(
        job,
        trigger="interval",
        minutes=minutes,
        args=args,
        id=job_id,
        name=name,
        max_instances=1,
        coalesce=True,
        replace_existing=True,
    )
    scheduler.start()
    return scheduler
