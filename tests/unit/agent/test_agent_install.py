"""Installing on an agent: probation, roll-back, restart recovery, full disks, slow hubs."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import http.server
import os
import queue
import select
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from agent.app import inference
from agent.identity import device_key, load_identity
from agent.installer import restore_installed
from agent.probation import ProbationPolicy
from agent.repository import ModelRepository
from agent.runtime import load_runtime, pick_runtime
from agent.store import BundleStore
from agent.sync import SyncWorker
from agent.updates.fetchers import FetchLimits, HubFetcher
from appliance.bundle.format import check_test_vectors, verify_bundle
from appliance.bundle.manifest import Lineage
from appliance.client.hub import HubClient
from appliance.errors import HubUnavailableError, ModelLoadError
from appliance.security.keys import init_keypair
from appliance.settings import AgentSettings
from hub.registry import bundler
from tests.harness.models import make_linear_regressor_onnx, make_reference_npy, make_tiny_onnx
from tests.harness.trust import (
    HUB_URL,
    POLICY,
    SiteFetcher,
    build_golden,
    copy_site,
    hub_services,
    principal_for,
    release,
)

BODY = b'{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}'


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_golden(tmp_path_factory.mktemp("golden-install"))


class Agent:
    """The agent's sync worker and repository, wired to a real hub service in process."""

    def __init__(self, root: Path, services, data_dir: Path | None = None) -> None:
        self.dir = data_dir or root / "agent"
        self.services = services
        identity = load_identity(self.dir)
        assert identity is not None
        self.identity = identity
        self.key = device_key(self.dir, identity)
        self.store = BundleStore(self.dir)
        self.repository = ModelRepository()
        self.fetcher = SiteFetcher(services, principal_for(identity))
        self.worker = SyncWorker(
            AgentSettings(hub_url=HUB_URL, data_dir=self.dir),
            HubClient(HUB_URL),
            self.store,
            self.repository,
            POLICY,
            identity,
            key=self.key,
            root=(self.dir / "tuf" / "pinned-root.json").read_bytes(),
            probation=ProbationPolicy(requests=5, seconds=3600, max_failures=2),
            fetcher=self.fetcher,
        )
        self.infer = inference(self.repository)

    def version(self) -> int:
        return self.repository.get("tiny").version

    def requests(self, n: int) -> None:
        for _ in range(n):
            with contextlib.suppress(RuntimeError):
                self.infer("tiny", None, BODY)


@pytest.fixture
def site(golden: Path, tmp_path: Path):
    root = copy_site(golden, tmp_path / "site")
    services = hub_services(root / "hub")
    agent = Agent(root, services)
    agent.worker.run_once()
    assert agent.version() == 1 and agent.store.current() == {"tiny": 1}
    yield root, services, agent
    services.engine.dispose()


class CrashingRuntime:
    """A model that loads and passes its test vectors, then fails on live traffic."""

    kind = "onnxruntime"

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise RuntimeError("ORT: illegal memory access")


def test_first_install_serves_at_once_with_nothing_to_fall_back_to(site):
    _root, _services, agent = site
    assert agent.store.state().models["tiny"].pending is None


def test_new_version_serves_on_probation_then_becomes_the_last_good(site):
    _root, services, agent = site
    release(services, 2.0)
    agent.worker.run_once()
    assert agent.version() == 2
    assert agent.store.state().models["tiny"].pending == 2
    assert agent.store.current() == {"tiny": 1}  # a crash now would come back on v1
    agent.requests(5)
    agent.worker.check_probations()
    slots = agent.store.state().models["tiny"]
    assert (slots.current, slots.previous, slots.pending) == (2, 1, None)


def test_failing_first_requests_roll_back_and_are_reported(site):
    _root, services, agent = site
    release(services, 2.0)
    agent.worker.run_once()
    on_trial = agent.repository.get("tiny")
    agent.repository.swap(dataclasses.replace(on_trial, runtime=CrashingRuntime()))
    agent.requests(2)
    agent.worker.check_probations()
    assert agent.version() == 1
    assert agent.store.current() == {"tiny": 1}
    assert not agent.store.path("tiny", 2).exists()
    beat = agent.worker._heartbeat()
    assert beat.health == "degraded" and "rolled back tiny v2 to v1" in (beat.detail or "")
    agent.worker.run_once()  # the same target is not installed again
    assert agent.version() == 1


def test_restart_while_on_probation_comes_back_on_the_last_good(site):
    root, services, agent = site
    release(services, 2.0)
    agent.worker.run_once()
    assert agent.version() == 2  # … and then the power goes
    after = Agent(root, services)
    notes = after.store.recover()
    assert notes and "rolled back to v1" in notes[0]
    restore_installed(after.store, after.repository, POLICY, after.key)
    assert after.version() == 1
    after.worker.run_once()  # the version that was on trial is not retried
    assert after.version() == 1


def test_clean_stop_during_probation_sets_the_version_aside_without_blame(site):
    root, services, agent = site
    release(services, 2.0)
    agent.worker.run_once()
    agent.worker.stop()
    after = Agent(root, services)
    assert after.store.recover() == []
    restore_installed(after.store, after.repository, POLICY, after.key)
    assert after.version() == 1
    after.worker.run_once()
    assert after.version() == 2  # offered again, installed again


def test_restart_falls_back_to_previous_when_current_is_damaged_on_disk(site):
    _root, services, agent = site
    release(services, 2.0)
    agent.worker.run_once()
    agent.requests(5)
    agent.worker.check_probations()
    sealed = agent.store.path("tiny", 2) / "sealed.tar"
    data = bytearray(sealed.read_bytes())
    data[len(data) // 2] ^= 1
    sealed.write_bytes(bytes(data))
    fresh = ModelRepository()
    restore_installed(BundleStore(agent.dir), fresh, POLICY, agent.key)
    assert fresh.get("tiny").version == 1


def test_versions_answer_with_their_own_weights(site):
    _root, services, agent = site
    v1 = agent.infer("tiny", None, BODY).body
    release(services, 3.0)
    agent.worker.run_once()
    v2 = agent.infer("tiny", None, BODY).body
    assert b'"model_version":"2"' in v2 and v1 != v2


# -- full disk ------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 3 MiB file system (tmpfs), where this machine lets tests mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_during_an_update_keeps_the_old_model(golden, tmp_path, small_disk):
    root = copy_site(golden, tmp_path / "site")
    agent_dir = small_disk / "agent"
    shutil.copytree(root / "agent", agent_dir)
    services = hub_services(root / "hub")
    try:
        agent = Agent(root, services, data_dir=agent_dir)
        agent.worker.run_once()
        assert agent.version() == 1
        release(services, 2.0)
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        ballast = small_disk / "ballast"
        with ballast.open("wb") as handle:  # leave less room than v2 needs
            handle.write(b"\0" * max(0, free - 8192))
        agent.worker.run_once()
        assert agent.version() == 1 and agent.store.current() == {"tiny": 1}
        assert list(agent.store.staging.iterdir()) == []
        assert "No space left" in (agent.worker._heartbeat().detail or "")
        ballast.unlink()
        agent.worker._retry_at.clear()  # the retry timer, not the disk, is all that remains
        agent.worker.run_once()
        assert agent.version() == 2
    finally:
        services.engine.dispose()


def test_no_space_error_is_real(small_disk):
    with pytest.raises(OSError) as raised, (small_disk / "x").open("wb") as handle:
        handle.write(b"\0" * (4 << 20))
        handle.flush()
    assert raised.value.errno == errno.ENOSPC


# -- slow and endless servers -------------------------------------------------------------


class _Trickle(http.server.BaseHTTPRequestHandler):
    """Promises 10 MiB, then sends a byte every 20 ms ("trickle") or nothing ("silent") for
    up to a minute, and says in ``outcomes`` whether the client hung up first."""

    mode = "trickle"
    outcomes: queue.Queue[str] = queue.Queue()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-length", str(10 << 20))
        self.end_headers()
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                if self.mode == "trickle":
                    self.wfile.write(b"x")
                    self.wfile.flush()
                if _hung_up(self.connection, 0.02):
                    self.outcomes.put("abandoned")
                    return
        except (BrokenPipeError, ConnectionResetError):
            self.outcomes.put("abandoned")
            return
        self.outcomes.put("still waiting after a minute")

    def log_message(self, *_args: object) -> None:
        pass


def _hung_up(connection: socket.socket, wait: float) -> bool:
    """Whether the peer closed ``connection`` (checked for up to ``wait`` seconds)."""
    readable, _, _ = select.select([connection], [], [], wait)
    return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""


@pytest.fixture
def slow_server() -> Iterator[str]:
    _Trickle.outcomes = queue.Queue()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize(
    ("mode", "limits"),
    [
        ("trickle", FetchLimits(read_timeout=2.0, grace_seconds=0.3, min_bytes_per_second=1e6)),
        ("silent", FetchLimits(read_timeout=0.5, grace_seconds=30, min_bytes_per_second=1)),
    ],
)
def test_a_stalled_or_silent_server_is_abandoned_quickly(slow_server, mode, limits):
    from agent.updates.trusted import tuf_errors_translated

    _Trickle.mode = mode
    fetcher = HubFetcher(HubClient(slow_server), limits)
    with pytest.raises(HubUnavailableError), tuf_errors_translated(offline=False):
        fetcher.download_bytes(f"{slow_server}/tuf/targets/x", 10 << 20)
    # abandoned by the agent, while the server still had more to give (or to withhold):
    # at the trickle's pace 10 MiB would take days
    assert _Trickle.outcomes.get(timeout=120) == "abandoned"


# -- runtimes ------------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_both_runtimes_pass_the_bundle_test_vectors(tmp_path, runtime):
    key = init_keypair(tmp_path / "keys")
    folder = tmp_path / "b"
    folder.mkdir()
    prepared = bundler.prepare(folder, make_tiny_onnx(), make_reference_npy())
    manifest = bundler.seal(
        prepared, name="tiny", version=1, metrics={}, lineage=Lineage(), key=key
    )
    loaded = load_runtime(folder, manifest, runtime, threads=1)  # type: ignore[arg-type]
    assert loaded.kind == runtime
    assert check_test_vectors(folder, manifest, loaded.infer) == 2
    out = loaded.infer({"input": np.zeros((3, 4), np.float32)})["probabilities"]
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_openvino_is_refused_for_a_bundle_without_ir(tmp_path):
    key = init_keypair(tmp_path / "keys")
    folder = tmp_path / "b"
    folder.mkdir()
    prepared = bundler.prepare(folder, make_linear_regressor_onnx(), None)  # OpenVINO can't
    manifest = bundler.seal(
        prepared, name="linear", version=1, metrics={}, lineage=Lineage(), key=key
    )
    assert not manifest.has_openvino_ir
    assert pick_runtime("auto", manifest) == "onnxruntime"
    with pytest.raises(ModelLoadError, match="no OpenVINO IR"):
        pick_runtime("openvino", manifest)


def test_a_sealed_slot_cut_short_on_disk_is_refused_at_restart(site):
    _root, _services, agent = site
    sealed = agent.store.path("tiny", 1) / "sealed.tar"
    data = sealed.read_bytes()
    sealed.write_bytes(data[: len(data) - 100])  # only tar padding is lost, yet …
    fresh = ModelRepository()
    assert restore_installed(BundleStore(agent.dir), fresh, POLICY, agent.key) == []


def test_auto_falls_back_to_onnx_runtime_when_openvino_fails_the_vectors_on_this_cpu(
    tmp_path, monkeypatch
):
    """The hub checked the IR on its own CPU; an agent whose CPU's kernels answer beyond the
    tolerance (a fault this box does not make, so OpenVINO's answers are shifted here)
    serves the model with ONNX Runtime on ``auto`` and refuses it on ``openvino``."""
    import agent.runtime.openvino as ov_runtime
    from agent.installer import InstallPolicy, load_verified
    from appliance.errors import TestVectorError

    folder = _sealed_tiny(tmp_path)
    real = ov_runtime.run_ir
    monkeypatch.setattr(
        ov_runtime,
        "run_ir",
        lambda *args: {k: v + 0.01 for k, v in real(*args).items()},
    )
    monkeypatch.setattr("agent.runtime.base.is_intel_cpu", lambda: True)
    loaded = load_verified(folder, InstallPolicy(runtime="auto", threads=1), check_hashes=True)
    assert loaded.runtime.kind == "onnxruntime"
    with pytest.raises(TestVectorError):
        load_verified(folder, InstallPolicy(runtime="openvino", threads=1), check_hashes=True)


def test_gpu_providers_come_first_tensorrt_before_cuda_and_only_those_offered():
    from agent.runtime.providers import gpu_providers

    offered = ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]
    assert gpu_providers(offered) == ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    assert gpu_providers(["CPUExecutionProvider"]) == []


def _sealed_tiny(tmp_path):
    key = init_keypair(tmp_path / "keys")
    folder = tmp_path / "b"
    folder.mkdir()
    prepared = bundler.prepare(folder, make_tiny_onnx(), None)
    bundler.seal(prepared, name="tiny", version=1, metrics={}, lineage=Lineage(), key=key)
    return folder


def test_auto_tries_a_gpu_provider_first_and_passes_over_one_that_cannot_serve(
    tmp_path, monkeypatch
):
    """Issue 15, item 5: on ``auto`` the GPU providers ONNX Runtime offers are tried first;
    this CPU build cannot use CUDA (as a GPU host with a broken driver could not), so the
    agent says so and serves on the next runtime instead of failing the install."""
    from agent.installer import InstallPolicy, _candidates, load_verified

    folder = _sealed_tiny(tmp_path)
    monkeypatch.setattr("agent.installer.gpu_providers", lambda: ["CUDAExecutionProvider"])
    monkeypatch.setattr("agent.runtime.base.is_intel_cpu", lambda: False)
    policy = InstallPolicy(runtime="auto", threads=1)
    manifest = verify_bundle(folder, None)
    assert [name for name, _ in _candidates(folder, manifest, policy)] == [
        "onnxruntime (cuda)",
        "onnxruntime",
    ]
    loaded = load_verified(folder, policy, check_hashes=True)
    assert loaded.runtime.kind == "onnxruntime"
    assert loaded.runtime.provider == "CPUExecutionProvider"  # type: ignore[attr-defined]
    pinned = InstallPolicy(runtime="onnxruntime", threads=1)
    assert [name for name, _ in _candidates(folder, manifest, pinned)] == ["onnxruntime"]


@pytest.mark.skipif(
    "CUDAExecutionProvider" not in __import__("onnxruntime").get_available_providers(),
    reason="needs the GPU build of ONNX Runtime and an NVIDIA GPU (none on this host)",
)
def test_on_a_gpu_host_auto_serves_on_the_gpu_within_the_bundle_tolerance(tmp_path):
    from agent.installer import InstallPolicy, load_verified

    loaded = load_verified(
        _sealed_tiny(tmp_path), InstallPolicy(runtime="auto", threads=1), check_hashes=True
    )
    assert loaded.runtime.provider in (  # type: ignore[attr-defined]
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
    )


def test_failures_in_serving_processes_roll_the_version_back_too(site, tmp_path):
    """--workers N: the owner runs the probation, but the serving processes answer most
    requests; their failures of the version on trial count (agent.peers)."""
    from agent.peers import Peers, Share

    _root, services, agent = site
    owner = Peers(tmp_path / "processes", "owner", pid=1)
    owner.clear()
    agent.worker.elsewhere = owner.requests
    serving = Peers(tmp_path / "processes", "serving", pid=2)
    key = ("appliance_agent_requests_total", "tiny", "2", "")
    release(services, 2.0)
    agent.worker.run_once()
    assert agent.version() == 2
    serving.publish(Share(pid=2, role="serving", samples=[((*key, "ok"), 1.0)]))
    agent.worker.check_probations()
    assert agent.version() == 2  # one success elsewhere: still on trial
    failed = [((*key, "ok"), 1.0), ((*key, "error"), 2.0)]
    serving.publish(Share(pid=2, role="serving", samples=failed))
    agent.worker.check_probations()
    assert agent.version() == 1 and agent.store.current() == {"tiny": 1}
    assert "2 of its first 3 requests failed" in agent.worker._heartbeat().detail


def test_a_serving_process_follows_the_owners_install_probation_and_rollback(site):
    """--workers N: a serving process loads what the owner installed, from the same
    verified slots; the version on probation while the owner serves it, then back."""
    from agent.access import DataPlaneAccess
    from agent.experiments import ExperimentRouter
    from agent.follower import InstallFollower

    _root, services, agent = site
    mirror = ModelRepository()
    follower = InstallFollower(
        agent.store, mirror, POLICY, agent.key, DataPlaneAccess(), ExperimentRouter()
    )
    assert follower.follow() and mirror.get("tiny").version == 1
    assert not follower.follow()  # nothing changed: nothing read
    release(services, 2.0)
    agent.worker.run_once()
    assert follower.follow() and mirror.get("tiny").version == 2  # on probation, as the owner
    on_trial = agent.repository.get("tiny")
    agent.repository.swap(dataclasses.replace(on_trial, runtime=CrashingRuntime()))
    agent.requests(2)
    agent.worker.check_probations()  # rolled back
    assert follower.follow() and mirror.get("tiny").version == 1
