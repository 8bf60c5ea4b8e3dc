"""Logs a site can ship: plain text for a terminal, or one JSON object a line for ELK or
journald (``--log-format json``, ``APPLIANCE_LOG_FORMAT=json``).

A JSON line holds ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, and,
when the line was written while serving a request, ``request_id``, ``actor``, ``model``
and ``version``. The request id is the one the answer carries (``X-Request-ID``); a hub
client sends its caller's, so one request can be followed from agent to hub.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Final, Literal, get_args

from appliance.errors import ConfigError

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[str, ...] = get_args(LogFormat)
REQUEST_ID_HEADER: Final = "x-request-id"

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
actor: ContextVar[str | None] = ContextVar("actor", default=None)
model: ContextVar[str | None] = ContextVar("model", default=None)
version: ContextVar[str | None] = ContextVar("version", default=None)
_CONTEXT: Final = (
    ("request_id", request_id),
    ("actor", actor),
    ("model", model),
    ("version", version),
)
_ACCEPTED_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def new_request_id() -> str:
    return uuid.uuid4().hex


def accepted_request_id(given: str | None) -> str:
    """The caller's request id when it is a short plain token, else a new one (a log line
    must not carry what a caller chose to inject into it)."""
    return given if given and _ACCEPTED_ID.fullmatch(given) else new_request_id()


class JsonFormatter(logging.Formatter):
    """One JSON object a line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, variable in _CONTEXT:
            value = variable.get()
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(log_format: str = "text", level: str = "INFO") -> None:
    """Where and how this process logs: standard error, as text or JSON lines."""
    if log_format not in LOG_FORMATS:
        raise ConfigError(
            f"log format {log_format!r} is not one of {', '.join(LOG_FORMATS)}",
            hint="--log-format text|json (or APPLIANCE_LOG_FORMAT)",
        )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO), handlers=[handler], force=True
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)  # "run skipped" noise
