"""What every benchmark's command line shares: the ``--agent-env`` flag, running the
measurement in a temporary folder, and printing the table, its target lines and JSON."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lean_client import BenchError

from appliance.errors import ApplianceError


def add_agent_env(parser: argparse.ArgumentParser, example: str) -> None:
    parser.add_argument(
        "--agent-env",
        action="append",
        metavar="KEY=VALUE",
        help=f"an APPLIANCE_* setting for the agent, e.g. {example} (repeatable)",
    )


def agent_env(args: argparse.Namespace) -> dict[str, str]:
    return dict(item.split("=", 1) for item in args.agent_env or [])


def target_line(what: str, value: float, op: str, target: float) -> str:
    """One target, as every benchmark prints it: the figure, the bound, PASS or MISS."""
    met = value >= target if op == ">=" else value <= target
    return f"{what:<46}{value:>8.3f}  {op} {target:<5g} {'PASS' if met else 'MISS'}"


def run(
    prefix: str,
    measure: Callable[[Path], dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
    json_path: Path | None,
    broken: tuple[type[BaseException], ...] = (),
) -> int:
    """``measure`` in a fresh temporary folder (removed after), then the report: exit
    status 0 when every figure was taken, 1 (with the reason) when something broke."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    caught: tuple[type[BaseException], ...] = (BenchError, ApplianceError, OSError, *broken)
    try:
        figures = measure(root)
    except caught as exc:
        print(f"benchmark broke: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(render(figures))
    if json_path:
        json_path.write_text(json.dumps(figures, indent=2))
    return 0
