"""Running one step of an upgrade as a command, its failure an :class:`UpgradeError`."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from appliance.cli.upgrade.errors import UpgradeError


def run_step(
    argv: list[str],
    what: str,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    lines: int | None = 5,
) -> None:
    """Run ``argv``; when it fails, raise "could not ``what``" with the last ``lines`` of
    what it said (all of it with None) as the hint."""
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=timeout
    )
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip()
        hint = said if lines is None else "\n".join(said.splitlines()[-lines:])
        raise UpgradeError(f"could not {what} (exit {done.returncode})", hint=hint or None)
