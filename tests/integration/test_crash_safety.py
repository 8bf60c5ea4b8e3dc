"""``kill -9`` at random moments of an update: after restart the agent serves old or new, whole.

Each trial copies an agent that serves v1, starts a real ``appliance bundle
import`` of v2 in its own process, kills it with SIGKILL at a random moment,
then starts the agent's core on that folder as a restart would (recovery,
re-verification, loading) and checks that it serves exactly v1 or exactly v2:
the version it names answers with that version's own outputs.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from agent.app import build_core
from agent.offline_install import import_bundle
from appliance.settings import AgentSettings
from tests.harness.trust import POLICY, enrol_agent, hub_services, release

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRIALS = 50
ROW = {"input": np.array([[1.0, -2.0, 0.5, 3.0]], dtype=np.float32)}


def _restart(data_dir: Path) -> tuple[int, np.ndarray]:
    core = build_core(
        AgentSettings(hub_url="http://127.0.0.1:9", data_dir=data_dir), start_sync=False
    )
    model = core.repository.get("tiny")
    try:
        return model.version, model.runtime.infer(ROW)["probabilities"]
    finally:
        # Closed here, not whenever the garbage collector gets to it: closing the outbox's
        # last connection removes its -wal and -shm files, which a copy of the folder
        # running meanwhile would find gone (shutil.Error).
        core.outbox.close()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("crash")
    services = hub_services(root / "hub")
    try:
        enrol_agent(services, root / "agent", "edge-crash")
        release(services, 1.0)
        v1 = root / "v1.tar"
        services.updates.export_offline(zone="ae-dxb", group="default", out=v1, actor="t")
        import_bundle(v1, root / "agent", POLICY)
        release(services, 2.0)
        v2 = root / "v2.tar"
        services.updates.export_offline(zone="ae-dxb", group="default", out=v2, actor="t")
    finally:
        services.engine.dispose()
    expected = {1: _restart(root / "agent")[1]}
    scratch = root / "scratch"
    shutil.copytree(root / "agent", scratch)
    import_bundle(v2, scratch, POLICY)
    version, outputs = _restart(scratch)
    assert version == 2
    expected[2] = outputs
    assert not np.allclose(expected[1], expected[2])
    return {"agent": root / "agent", "bundle": v2, "expected": expected}


def _import(data_dir: Path, bundle: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "appliance.cli.main",
            "bundle",
            "import",
            str(bundle),
            "--data-dir",
            str(data_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "APPLIANCE_RUNTIME": "onnxruntime"},
    )


def test_kill_9_at_random_moments_never_leaves_neither_or_a_mix(prepared, tmp_path):
    agent, bundle = prepared["agent"], prepared["bundle"]
    expected: dict[int, np.ndarray] = prepared["expected"]  # type: ignore[assignment]
    timing = tmp_path / "timing"
    shutil.copytree(agent, timing)  # type: ignore[arg-type]
    started = time.monotonic()
    assert _import(timing, bundle).wait(120) == 0  # type: ignore[arg-type]
    full = time.monotonic() - started
    rng = random.Random(20261123)
    outcomes: Counter[str] = Counter()
    for trial in range(TRIALS):
        folder = tmp_path / f"trial-{trial}"
        shutil.copytree(agent, folder)  # type: ignore[arg-type]
        process = _import(folder, bundle)  # type: ignore[arg-type]
        time.sleep(rng.uniform(0.3, 1.05) * full)
        finished = process.poll() is not None
        if not finished:
            process.send_signal(signal.SIGKILL)
        process.wait(30)
        version, outputs = _restart(folder)
        assert version in (1, 2), f"trial {trial}: serving v{version}"
        np.testing.assert_allclose(outputs, expected[version], rtol=1e-6, err_msg=f"trial {trial}")
        if finished:
            assert version == 2, f"trial {trial}: import finished but v{version} serves"
        outcomes[f"v{version}{' (finished)' if finished else ''}"] += 1
        shutil.rmtree(folder)
    print(f"\n{TRIALS} kill -9 trials over a {full:.2f} s import: {dict(outcomes)}")
