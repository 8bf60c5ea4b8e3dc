"""Real hub and agent processes on loopback, set up as the demo sets up a site.

Each test module gets one hub (plain HTTP for speed; the demo test covers
HTTPS) with the demo's people, and signed-in clients for them. Agents enrol
with one-time tokens made by the admin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from appliance.cli.demo import processes
from appliance.cli.demo.load import v2_body
from appliance.cli.demo.processes import (
    ServiceProcess,
    agent_process,
    default_trust,
    hub_process,
    wait_for,
)
from appliance.cli.demo.site import Site, bootstrap_site
from appliance.client.hub import HubClient
from appliance.wire.registry import VersionInfo
from tests.harness.models import make_reference_npy, make_tiny_onnx

MODEL = "tiny"


def wait_until(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    return wait_for(what, check, timeout)


def infer_rows(url: str, rows: np.ndarray, batch: int = 10) -> list[int]:
    """Send ``rows`` to the agent's model in batches; the status code of each request."""
    return [
        httpx.post(
            f"{url}/v2/models/{MODEL}/infer",
            json=v2_body(rows[i : i + batch]),
            timeout=5,
            verify=default_trust(),
        ).status_code
        for i in range(0, len(rows), batch)
    ]


def agent_status(url: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(
        f"{url}/agent/status", timeout=5, verify=default_trust()
    ).json()
    return answer


def serving_version(agent: ServiceProcess, model: str = MODEL) -> str | None:
    return processes.serving_version(agent.url, model)


def promote(
    engineer: HubClient, approver: HubClient, name: str, onnx_bytes: bytes, **upload: Any
) -> VersionInfo:
    """Upload (``upload``: :meth:`HubClient.upload_model`'s options), stage and approve into
    production, as the site's people would."""
    info = engineer.upload_model(name, onnx_bytes, **upload)
    engineer.change_stage(name, info.version, "staging")
    return approver.change_stage(name, info.version, "production")


def publish(
    engineer: HubClient, approver: HubClient, onnx_bytes: bytes | None = None, name: str = MODEL
) -> VersionInfo:
    """The tiny model (or ``onnx_bytes``) with a reference sample, into production."""
    return promote(
        engineer,
        approver,
        name,
        onnx_bytes or make_tiny_onnx(),
        reference_npy=make_reference_npy(),
        metrics={"accuracy": 0.5},
    )


def stage_candidate(engineer: HubClient, approver: HubClient, name: str = MODEL) -> int:
    """A new version of the tiny model in staging, cleared for live traffic (an exposure
    approval), as rollout rings and A/B variants need; its version number."""
    version = engineer.upload_model(
        name, make_tiny_onnx(), reference_npy=make_reference_npy()
    ).version
    engineer.change_stage(name, version, "staging")
    approver.approve_exposure(name, version)
    return version


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder per test module: its hub and agents live (and are shared) there."""
    return tmp_path_factory.mktemp("loop")


@pytest.fixture(scope="module")
def site(workdir: Path) -> Site:
    return bootstrap_site(workdir, tls=False)


@contextmanager
def running_hub(
    site: Site, *extra_args: str, env: dict[str, str] | None = None
) -> Iterator[ServiceProcess]:
    """A hub for ``site`` with these flags and ``APPLIANCE_*`` settings, stopped afterwards."""
    proc = hub_process(site.hub_dir, extra_args=extra_args)
    proc.env.update(env or {})
    proc.start()
    try:
        proc.wait_healthy()
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def hub(site: Site) -> Iterator[ServiceProcess]:
    with running_hub(site) as proc:
        yield proc


def _client(site: Site, hub: ServiceProcess, username: str) -> Iterator[HubClient]:
    client = site.client(hub.url, username)
    yield client
    client.close()


@pytest.fixture(scope="module")
def admin(site: Site, hub: ServiceProcess) -> Iterator[HubClient]:
    yield from _client(site, hub, "admin")


@pytest.fixture(scope="module")
def engineer(site: Site, hub: ServiceProcess) -> Iterator[HubClient]:
    yield from _client(site, hub, "alice")


@pytest.fixture(scope="module")
def approver(site: Site, hub: ServiceProcess) -> Iterator[HubClient]:
    yield from _client(site, hub, "omar")


class AgentStarter:
    """Enrols and starts agents on ``hub`` as the site's admin would; :meth:`stop_all`
    stops every one it started."""

    def __init__(self, workdir: Path, site: Site, hub: ServiceProcess, admin: HubClient) -> None:
        self.workdir, self.site, self.hub, self.admin = workdir, site, hub, admin
        self.started: list[ServiceProcess] = []

    def __call__(
        self,
        name: str = "agent-1",
        *,
        root: Path | None = None,
        zone: str = "ae-dxb",
        group: str = "default",
        **kwargs: Any,
    ) -> ServiceProcess:
        token = self.admin.create_enrolment_token(zone, group)["token"]
        proc = agent_process(
            name,
            self.workdir / name,
            self.hub.url,
            root or self.site.trusted_root,
            enrol_token=token,
            # agent_process's sync interval, the demo's (production: 10 s). A sync round is
            # four requests: at 0.3 s, two idle agents kept a third of a core busy, theirs
            # and their hub's, and the suite was CPU-bound (docs/decisions.md, "Tests").
            # Most tests call agents as an anonymous client; the data plane's keys have
            # their own tests (tests/security/test_agent_data_plane.py), with it closed.
            # Their hubs hold no site CA, so agents serve plain HTTP, as told.
            **{"probation_seconds": 1.0, "open_data_plane": True, "plain_http": True, **kwargs},
        )
        proc.start()
        self.started.append(proc)
        proc.wait_healthy()
        return proc

    def stop_all(self) -> None:
        processes.stop_all(self.started)
        self.started.clear()


@pytest.fixture(scope="module")
def start_agent(
    workdir: Path, site: Site, hub: ServiceProcess, admin: HubClient
) -> Iterator[AgentStarter]:
    """Agents that live until the module's last test: for modules whose tests share them,
    or whose hub counts every agent it enrolled (rollout rings)."""
    starter = AgentStarter(workdir, site, hub, admin)
    yield starter
    starter.stop_all()


@pytest.fixture
def start_test_agent(
    workdir: Path, site: Site, hub: ServiceProcess, admin: HubClient
) -> Iterator[AgentStarter]:
    """Agents stopped when the test ends. Each running agent syncs with the hub every
    second, so a module whose tests each start their own would otherwise end with a dozen
    of them busy beside it."""
    starter = AgentStarter(workdir, site, hub, admin)
    yield starter
    starter.stop_all()
