"""Agents swap models under live traffic and refuse bundles they must not trust."""

from __future__ import annotations

import hashlib
import sqlite3
import tarfile
from pathlib import Path

import httpx
import numpy as np
import pytest

from appliance.cli.demo.load import LoadThread
from hub.updates.repository import UpdateRepository
from tests.harness.site import MODEL, publish, serving_version, wait_until

pytestmark = pytest.mark.integration


def _tamper_bundle(hub_dir: Path, version: int, member: str = "model.onnx") -> None:
    """Change one byte of ``member`` inside a stored bundle and make the hub's record agree.

    This is what an attacker who controls the hub's disk and database, but not its
    keys, could do: the hub then signs TUF metadata for the altered bundle, so
    transport hashes match; the manifest's per-file hashes inside still tell.
    """
    db = sqlite3.connect(hub_dir / "hub.db")
    (sha,) = db.execute(
        "SELECT bundle_sha256 FROM model_versions v JOIN models m ON m.id = v.model_id "
        "WHERE m.name = ? AND v.version = ?",
        (MODEL, version),
    ).fetchone()
    blob = hub_dir / "artifacts" / "sha256" / sha[:2] / sha
    data = bytearray(blob.read_bytes())
    with tarfile.open(blob) as tar:
        offset = tar.getmember(member).offset_data
    data[offset + 40] ^= 0x01
    new_sha = hashlib.sha256(data).hexdigest()
    target = blob.parent.parent / new_sha[:2] / new_sha
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(bytes(data))
    db.execute(
        "UPDATE model_versions SET bundle_sha256 = ? WHERE bundle_sha256 = ?", (new_sha, sha)
    )
    db.commit()
    db.close()


def _agent_detail(hub_client, name):
    return next((a for a in hub_client.list_agents() if a.name == name), None)


def test_agents_swap_under_load_with_no_failed_request(engineer, approver, start_test_agent):
    agents = [start_test_agent("swap-1"), start_test_agent("swap-2")]
    publish(engineer, approver)
    for agent in agents:
        wait_until("v1", lambda a=agent: serving_version(a) == "1")
    rows = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    labels = np.zeros(50, dtype=np.int64)
    loads = [LoadThread(a.url, MODEL, rows, labels) for a in agents]
    for load in loads:
        load.start()
    publish(engineer, approver)
    for agent in agents:
        wait_until("v2", lambda a=agent: serving_version(a) == "2")
    results = [load.stop() for load in loads]
    for result in results:
        assert result.failures == []
        assert result.versions() == ["1", "2"]
        assert len(result.outcomes) > 20
    for agent in agents:
        old = httpx.post(
            f"{agent.url}/v2/models/{MODEL}/versions/1/infer",
            timeout=5,
            json={
                "inputs": [
                    {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [0, 0, 0, 0]}
                ]
            },
        )
        assert old.status_code == 404


def test_tampered_bundle_is_refused_and_the_old_model_keeps_serving(
    engineer, approver, admin, start_test_agent, workdir
):
    agent = start_test_agent("tamper-1")
    current = publish(engineer, approver).version
    wait_until("the good version", lambda: serving_version(agent) == str(current))
    info = engineer.upload_model(MODEL, _tiny())
    _tamper_bundle(workdir / "hub", info.version)
    engineer.change_stage(MODEL, info.version, "staging")
    approver.change_stage(MODEL, info.version, "production")

    def refused():
        detail = _agent_detail(admin, "tamper-1")
        return detail and detail.health == "degraded" and detail.detail

    reason = wait_until("the agent to report the refusal", refused)
    assert f"v{info.version}" in reason and "model.onnx" in reason and "SHA-256" in reason
    assert serving_version(agent) == str(current)
    assert "refused" in agent.log_tail(40)


def test_agent_pinned_to_another_root_trusts_nothing_from_this_hub(
    admin, engineer, approver, start_test_agent, tmp_path
):
    stranger = UpdateRepository(tmp_path / "stranger-tuf", tmp_path / "stranger-keys")
    stranger.initialise()
    agent = start_test_agent("wrong-root-1", root=stranger.path("1.root.json"))
    publish(engineer, approver)

    def refused():
        detail = _agent_detail(admin, "wrong-root-1")
        return detail and detail.health == "degraded" and detail.detail

    reason = wait_until("the agent to report the refusal", refused)
    assert "update metadata refused" in reason and "not signed by enough trusted keys" in reason
    assert serving_version(agent) is None
    assert httpx.get(f"{agent.url}/v2/health/ready", timeout=5).status_code == 503


def _tiny() -> bytes:
    from tests.harness.models import make_tiny_onnx

    return make_tiny_onnx()
