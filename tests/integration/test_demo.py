"""The README's main command, run as a user would run it."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_runs_the_whole_loop_with_no_failed_request(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "demo", "--data-dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=240,
    )
    failed_steps = [line for line in result.stdout.splitlines() if "✗" in line]
    assert result.returncode == 0, (
        "\n".join(failed_steps) + result.stdout[-3000:] + result.stderr[-3000:]
    )
    assert "PASS" in result.stdout and "failures = 0" in result.stdout
    assert "both agents on v2: True" in result.stdout
    assert "1 → 2" in result.stdout


def test_demo_refuses_a_data_dir_that_is_not_empty(tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "demo", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "not empty" in result.stderr
    assert (tmp_path / "keep.txt").read_text() == "precious"
