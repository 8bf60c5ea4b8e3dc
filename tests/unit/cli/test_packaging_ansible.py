"""The Ansible tree is lint-clean (ansible-lint, production profile) and every playbook
parses against the example inventory."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ANSIBLE = Path(__file__).resolve().parents[3] / "ansible"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = BIN / name if (BIN / name).exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return str(found)


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "NO_COLOR": "1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def test_ansible_lint_is_clean(tmp_path: Path) -> None:
    result = subprocess.run(
        [_tool("ansible-lint"), "--offline", "--nocolor"],
        cwd=ANSIBLE,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Passed" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "playbook", ["site.yml", "remove.yml", "rollback.yml", "upgrade.yml", "upgrade-agents.yml"]
)
def test_playbooks_parse(tmp_path: Path, playbook: str) -> None:
    result = subprocess.run(
        [_tool("ansible-playbook"), "-i", "inventory.example.yml", playbook, "--syntax-check"],
        cwd=ANSIBLE,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_only_builtin_modules_are_used() -> None:
    """ansible-core alone runs the roles: no collection has to be installed offline."""
    modules: set[str] = set()
    for path in ANSIBLE.rglob("*.yml"):
        modules.update(re.findall(r"^\s*-?\s*(ansible\.\w+\.\w+):", path.read_text(), re.M))
    assert modules, "no fully qualified module names found"
    assert {m.rsplit(".", 1)[0] for m in modules} == {"ansible.builtin"}
