"""The command line as an operator runs it: a real ``python -m appliance`` process."""

from __future__ import annotations

import subprocess
import sys


def appliance(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        input=stdin,
    )
