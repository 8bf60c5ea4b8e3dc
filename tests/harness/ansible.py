"""``ansible-playbook`` from this checkout's ``ansible/`` folder, offline, as the installer
tests run it: a throw-away Ansible home and temp folders under the site folder, no pip
index or proxy that works, colours off; each run's output kept as ``run-N.log`` there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HAS_ANSIBLE = shutil.which("ansible-playbook", path=str(BIN)) is not None


def isolation() -> list[str]:
    """``unshare -n`` (a network namespace with no way out) where it works, else nothing."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []


def run_playbook(
    site: Path, *args: str, timeout: float = 800, offline: bool = True
) -> subprocess.CompletedProcess[str]:
    """``ansible-playbook -i site/inventory.yml ARGS`` in ``ansible/``; never raises for
    the playbook's own failure (the caller looks at the result). ``offline``: in a network
    namespace without a way out, where one can be made (not for hosts over SSH)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "ANSIBLE_"))}
    env.update(
        PIP_NO_INDEX="1",
        http_proxy="http://127.0.0.1:9",
        https_proxy="http://127.0.0.1:9",
        ANSIBLE_HOME=str(site / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(site / "ansible-tmp"),
        ANSIBLE_REMOTE_TEMP=str(site / "ansible-remote-tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    command = [
        *(isolation() if offline else []),
        str(BIN / "ansible-playbook"),
        "-i",
        str(site / "inventory.yml"),
    ]
    result = subprocess.run(
        [*command, *args],
        cwd=ROOT / "ansible",
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    log = site / f"run-{len(list(site.glob('run-*.log'))) + 1}.log"
    log.write_text(result.stdout + result.stderr)
    return result
