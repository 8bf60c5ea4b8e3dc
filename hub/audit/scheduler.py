"""Signing audit checkpoints every few minutes in the hub process (APScheduler 3)."""

from __future__ import annotations

import logging
from typing import Final

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine

from appliance.errors import ConfigError
from appliance.scheduling import run_every
from hub.audit.errors import AuditTamperedError
from hub.audit.schemas import Checkpoint
from hub.audit.service import AuditLog
from hub.db import session_scope

log = logging.getLogger(__name__)

DEFAULT_CHECKPOINT_MINUTES: Final = 5.0
JOB_ID: Final = "audit-checkpoint"


def run_checkpoint(engine: Engine, audit_log: AuditLog) -> Checkpoint | None:
    """One checkpoint in its own transaction; a broken chain is logged, never signed over."""

    try:
        with session_scope(engine) as session:
            checkpoint = audit_log.checkpoint(session)
    except AuditTamperedError as exc:
        log.critical("audit log tampered, checkpoint refused: %s", exc)
        return None
    if checkpoint is not None:
        log.info("audit checkpoint signed at seq=%d", checkpoint.seq)
    return checkpoint


def start_checkpoint_scheduler(
    engine: Engine, audit_log: AuditLog, minutes: float = DEFAULT_CHECKPOINT_MINUTES
) -> BackgroundScheduler:
    """Start a daemon thread that runs :func:`run_checkpoint` every ``minutes``.

    Runs never overlap and missed runs collapse into one. Stop it with
    ``scheduler.shutdown()``; a last :func:`run_checkpoint` after that covers the tail.
    """
    if minutes <= 0:
        raise ConfigError(f"audit checkpoint interval must be positive, not {minutes} minutes")
    return run_every(
        minutes,
        run_checkpoint,
        engine,
        audit_log,
        job_id=JOB_ID,
        name="sign an audit checkpoint",
    )
