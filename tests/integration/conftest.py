"""Real hub and agent processes on loopback, started by the same helpers as the demo."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.demo import processes
from appliance.demo.processes import ServiceProcess, agent_process, hub_process, wait_for
from appliance.hub_client import HubClient
from appliance.schemas import VersionInfo
from tests.conftest import make_reference_npy, make_tiny_onnx

MODEL = "tiny"


def wait_until(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    return wait_for(what, check, timeout)


def serving_version(agent: ServiceProcess, model: str = MODEL) -> str | None:
    return processes.serving_version(agent.url, model)


def publish(hub: HubClient, onnx_bytes: bytes | None = None, name: str = MODEL) -> VersionInfo:
    """Upload and promote to production, as an operator would."""
    info = hub.upload_model(
        name,
        onnx_bytes or make_tiny_onnx(),
        reference_npy=make_reference_npy(),
        metrics={"accuracy": 0.5},
    )
    hub.change_stage(name, info.version, "staging")
    return hub.change_stage(name, info.version, "production")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder per test module: its hub and agents live (and are shared) there."""
    return tmp_path_factory.mktemp("loop")


@pytest.fixture(scope="module")
def hub(workdir: Path) -> Iterator[ServiceProcess]:
    proc = hub_process(workdir / "hub")
    proc.start()
    try:
        proc.wait_healthy()
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def hub_client(hub: ServiceProcess) -> Iterator[HubClient]:
    with HubClient(hub.url) as client:
        yield client


@pytest.fixture(scope="module")
def start_agent(workdir: Path, hub: ServiceProcess) -> Iterator[Callable[..., ServiceProcess]]:
    started: list[ServiceProcess] = []

    def start(name: str = "agent-1", *, key: Path | None = None, **kwargs: Any) -> ServiceProcess:
        proc = agent_process(
            name,
            workdir / name,
            hub.url,
            key or workdir / "hub" / "keys" / "signing.pub",
            sync_interval=0.3,
            **kwargs,
        )
        proc.start()
        started.append(proc)
        proc.wait_healthy()
        return proc

    yield start
    for proc in started:
        proc.stop()
