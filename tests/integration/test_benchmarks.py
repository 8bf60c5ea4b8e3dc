"""The benchmarks run in quick mode, so they cannot rot: each starts its real hub and
agent, measures, and prints every target with PASS or MISS. Whether a target is met is
for the full run on a quiet machine to say, not for a test (bench/README.md)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_the_protocols_benchmark_measures_every_target_in_quick_mode(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_protocols.py"), "--quick", "--json", str(figures)],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    verdicts = re.findall(r"^(.+?)\s+[\d.]+\s+(?:<=|>=) [\d.]+\s+(PASS|MISS)$", done.stdout, re.M)
    assert [what.strip() for what, _ in verdicts] == [
        "agent/direct ORT throughput, b1 8 clients",
        "agent/direct ORT throughput, b8 8 clients",
        "HTTP binary/JSON p50, seq 128 b8",
        "gRPC/JSON p50, seq 128 b8",
        "/v2/health/live p99 under load, ms",
    ]
    assert figures.stat().st_size > 0


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
    figures = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_workers.py"), "--quick", "--json", str(figures)],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    verdicts = re.findall(r"^(.+?)\s+[\d.]+\s+>= [\d.]+\s+(PASS|MISS)$", done.stdout, re.M)
    assert [what.strip() for what, _ in verdicts] == ["2 processes / 1, throughput at 16 clients"]
    rounds = json.loads(figures.read_text())["rounds"]
    assert sorted(rounds) == ["1", "2"] and all(r[0]["per_s"] > 0 for r in rounds.values())


def test_the_upload_benchmark_measures_its_target_in_quick_mode(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_upload.py"), "--quick", "--json", str(figures)],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    verdicts = re.findall(r"^(.+?)\s+[\d.]+\s+<= [\d.]+\s+(PASS|MISS)$", done.stdout, re.M)
    assert [what.strip() for what, _ in verdicts] == ["refused upload: peak growth / its size"]
    uploads = json.loads(figures.read_text())["uploads"]
    assert uploads["ONNX model"]["answer"] == "accepted"
    assert uploads["no model"]["answer"].startswith("400")
