"""Console output shared by the commands: one place for colours and errors."""

from __future__ import annotations

import logging
import sys

from rich.console import Console

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)  # "run skipped" noise


def fail(message: str, hint: str | None = None) -> None:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    if hint:
        errors.print(f"[yellow]hint:[/] {hint}", highlight=False)
