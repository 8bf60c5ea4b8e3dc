"""Console output shared by the commands: one place for colours and errors."""

from __future__ import annotations

import argparse
import os

from rich.console import Console
from rich.markup import escape

from appliance import logs

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


def setup_logging(log_format: str | None = None, level: str = "INFO") -> None:
    """Log to standard error as text, or as JSON lines with ``json`` (``--log-format``,
    else ``APPLIANCE_LOG_FORMAT``): :mod:`appliance.logs`."""
    logs.configure(log_format or os.environ.get("APPLIANCE_LOG_FORMAT") or "text", level)


def log_format_flag() -> argparse.ArgumentParser:
    """``--log-format``, for the commands that run a service."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(
        "--log-format",
        choices=logs.LOG_FORMATS,
        help="text, or json: one JSON object a line for ELK or journald "
        "(default $APPLIANCE_LOG_FORMAT, else text)",
    )
    return parser


def fail(message: str, hint: str | None = None) -> None:
    """``error: message`` (and ``hint: hint``) on standard error, as written: brackets in
    them (``[fraud]``, ``[/tmp/x]``) are text, not console markup."""
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    if hint:
        errors.print(f"[yellow]hint:[/] {escape(hint)}", highlight=False)
