"""The benchmarks run in quick mode, so they cannot rot: each starts its real hub and
agent, measures, and prints every target with PASS or MISS. Whether a target is met is
for the full run on a quiet machine to say, not for a test (bench/README.md)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _quick(script: str, tmp_path: Path) -> tuple[list[str], Any]:
    """Run ``script --quick``: the names on its target lines and the JSON figures."""
    figures = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick", "--json", str(figures)],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    verdicts = re.findall(r"^(.+?)\s+[\d.]+\s+(?:<=|>=) [\d.]+\s+(PASS|MISS)$", done.stdout, re.M)
    return [what.strip() for what, _ in verdicts], json.loads(figures.read_text())


def test_the_protocols_benchmark_measures_every_target_in_quick_mode(tmp_path: Path) -> None:
    targets, figures = _quick("bench_protocols.py", tmp_path)
    assert targets == [
        "agent/direct ORT throughput, b1 8 clients",
        "agent/direct ORT throughput, b8 8 clients",
        "HTTP binary/JSON p50, seq 128 b8",
        "gRPC/JSON p50, seq 128 b8",
        "/v2/health/live p99 under load, ms",
    ]
    assert figures


def test_the_inference_benchmark_measures_every_target_in_quick_mode(tmp_path: Path) -> None:
    """Against the raw-ASGI floor and MLServer (from its own venv, built on first use)."""
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_inference.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=290,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    verdicts = re.findall(
        r"^(agent .+?)\s+[\d.]+\s+(?:<=|<) ?[\d.]+\s+(PASS|MISS)$", done.stdout, re.M
    )
    assert len(verdicts) == 6, done.stdout


def test_the_serving_processes_benchmark_measures_its_target_in_quick_mode(
    tmp_path: Path,
) -> None:
    targets, figures = _quick("bench_workers.py", tmp_path)
    assert targets == ["2 processes / 1, throughput at 16 clients"]
    rounds = figures["rounds"]
    assert sorted(rounds) == ["1", "2"] and all(r[0]["per_s"] > 0 for r in rounds.values())


def test_the_upload_benchmark_measures_its_target_in_quick_mode(tmp_path: Path) -> None:
    targets, figures = _quick("bench_upload.py", tmp_path)
    assert targets == ["refused upload: peak growth / its size"]
    assert figures["uploads"]["ONNX model"]["answer"] == "accepted"
    assert figures["uploads"]["no model"]["answer"].startswith("400")


@pytest.mark.parametrize(
    ("script", "small", "prints"),
    [
        ("bench_drift.py", ["--calls", "200", "--repeats", "2"], "overhead at p50"),
        (
            "bench_trainer.py",
            ["--rows", "2000", "--epochs", "1", "--repeats", "1", "--device", "cpu"],
            "ours / plain loop",
        ),
        ("bench_updates.py", ["--mb", "1", "--rounds", "1", "--targets", "20"], "median"),
        (
            "bench_features.py",
            ["--features", "20000", "--events", "2000", "--repeat", "1"],
            "over HTTP, 100 entities",
        ),
    ],
)
def test_the_other_benchmarks_run_on_small_inputs(
    script: str, small: list[str], prints: str
) -> None:
    """Issue 16: every script in bench/ runs in CI, small, so none breaks unnoticed."""
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *small],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert prints in done.stdout
