"""A real hub on loopback with a site's people, a model and an agent, for the console.

One hub for the whole session (starting one costs seconds); tests leave its
seeded records as they found them, or make their own (the revoke test enrols
its own agent). The hub runs with
``--approvals-required 2`` so an approval can come back as 202, version 1 of
``tiny`` in production, version 2 a fresh candidate, and agent ``edge-1``
enrolled through the API with a heartbeat saying it runs ``tiny@1``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from textual.css.query import NoMatches
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from appliance.cli.demo.processes import ServiceProcess, free_port, hub_process
from appliance.cli.demo.site import Site, bootstrap_site
from appliance.client.hub import HubClient
from appliance.security.credentials import AgentCredentials
from appliance.security.keys import KeyPair, init_keypair, public_pem
from appliance.wire.fleet import AgentInfo, EnrolmentRequest, Heartbeat, InstalledModel
from tests.harness.models import make_reference_npy, make_tiny_onnx
from tui import ConsoleApp, HubConnector
from tui.dialogs import ConfirmDialog
from tui.screens import MainScreen

MODEL = "tiny"


@dataclass
class LiveHub:
    site: Site
    root: Path
    port: int
    process: ServiceProcess

    @property
    def url(self) -> str:
        return self.process.url

    def client(self, username: str) -> HubClient:
        return self.site.client(self.url, username)

    def worker_account(self, name: str) -> HubClient:
        """A client signed in as training worker ``name``, an account of its own (the hub
        knows a worker by its account), created on first use."""
        if name not in self.site.passwords:
            self.site.passwords[name] = secrets.token_urlsafe(18)
            with self.client("admin") as admin:
                admin.create_user(name, self.site.passwords[name], ["worker"])
        return self.client(name)

    def start(self) -> None:
        self.process = hub_process(
            self.site.hub_dir, self.port, extra_args=("--approvals-required", "2")
        )
        # every console test signs in anew: more than the default 30 a minute in a full run
        self.process.env["APPLIANCE_SIGN_IN_PER_MINUTE"] = "600"
        self.process.start()
        self.process.wait_healthy()

    def stop(self) -> None:
        self.process.stop()


def enrol_agent(
    hub: LiveHub, admin: HubClient, name: str, *, group: str, keys: Path
) -> tuple[AgentInfo, KeyPair]:
    """Enrol ``name`` as an agent does: a one-time token from the admin, its own key."""
    token = admin.create_enrolment_token("ae-dxb", group)["token"]
    key = init_keypair(keys / name, "agent")
    request = EnrolmentRequest(
        token=token, name=name, public_key=public_pem(key.public).decode(), runtime="onnxruntime"
    )
    with HubClient(hub.url) as anonymous:
        return anonymous.enrol(request), key


def agent_client(hub: LiveHub, name: str, *, group: str) -> tuple[AgentInfo, HubClient]:
    """A newly enrolled agent and a client acting as it (the caller closes it)."""
    with hub.client("admin") as admin:
        info, key = enrol_agent(hub, admin, name, group=group, keys=hub.root / "keys")
    return info, HubClient(hub.url, credentials=AgentCredentials(key, info.id))


def cleared_for_traffic(hub: LiveHub, model: str, *versions: int) -> None:
    """Both approvers let staging ``versions`` take live traffic (rollout rings, A/B
    variants): this hub needs two approvals, the author's never counting."""
    for approver in ("omar", "fatima"):
        with hub.client(approver) as client:
            for version in versions:
                client.approve_exposure(model, version)


EDGE_RELEASE = "0.1.1"
"""The release edge-1's heartbeat says it runs (newer than it said at enrolment)."""


def seed(hub: LiveHub, keys: Path) -> None:
    """v1 of ``tiny`` in production (two approvers), v2 a candidate; agent ``edge-1``."""
    alice, omar, fatima, admin = (hub.client(u) for u in ("alice", "omar", "fatima", "admin"))
    try:
        v1 = alice.upload_model(
            MODEL,
            make_tiny_onnx(),
            reference_npy=make_reference_npy(),
            metrics={"accuracy": 0.91},
            lineage={"source": "tiny.onnx"},
        )
        alice.change_stage(MODEL, v1.version, "staging")
        omar.change_stage(MODEL, v1.version, "production")
        fatima.change_stage(MODEL, v1.version, "production")
        alice.upload_model(MODEL, make_tiny_onnx(), metrics={"accuracy": 0.93})
        info, key = enrol_agent(hub, admin, "edge-1", group="lobby", keys=keys)
        with HubClient(hub.url, credentials=AgentCredentials(key, info.id)) as agent:
            agent.heartbeat(
                info.id,
                Heartbeat(
                    models=[InstalledModel(name=MODEL, version=1, runtime="onnxruntime")],
                    software_version=EDGE_RELEASE,
                ),
            )
    finally:
        for client in (alice, omar, fatima, admin):
            client.close()


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """The console's tests are coroutines run by anyio's pytest plugin, on asyncio."""
    return "asyncio"


@pytest.fixture(scope="session")
def live_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    root = tmp_path_factory.mktemp("console")
    site = bootstrap_site(root, tls=False)
    port = free_port()
    hub = LiveHub(site, root, port, hub_process(site.hub_dir, port))
    hub.start()
    try:
        seed(hub, root / "keys")
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def console(live_hub: LiveHub) -> Callable[..., ConsoleApp]:
    def make(refresh_s: float = 60.0) -> ConsoleApp:
        return ConsoleApp(
            # The console's own 10 s: a sign-in is a scrypt hash at the hub, and on a loaded
            # 2-core CI box it took over the 2 s these tests once allowed ("Cannot reach
            # the hub", then a sign-in test timed out waiting for the main screen).
            HubConnector(live_hub.url),
            live_hub.url,
            refresh_s=refresh_s,
        )

    return make


async def until(pilot: Pilot[Any], check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Let the app run until ``check()`` is truthy (workers answer asynchronously).

    The deadline is wall-clock and generous: a condition, not a pace, is what is tested.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {check}")
        await pilot.pause(0.05)


async def settled(pilot: Pilot[Any], timeout: float = 30.0) -> None:
    """Let the app run until it has nothing left to do: no worker running and two screens
    drawn one after the other alike (a focus moved after mount, a table filled by a
    worker's answer, a dialog's own fetch all show first). A snapshot taken after a fixed
    number of pauses caught such a change half done on a loaded machine."""
    app = pilot.app
    deadline = time.monotonic() + timeout
    drawn = ""
    while True:
        await app.workers.wait_for_complete()
        await pilot.pause()
        now = app.export_screenshot()
        if now == drawn and not any(worker.is_running for worker in app.workers):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the console still changed after {timeout} s")
        drawn = now


async def sign_in(pilot: Pilot[Any], username: str, password: str) -> None:
    screen = pilot.app.screen
    screen.query_one("#username", Input).value = username
    screen.query_one("#password", Input).value = password
    await pilot.click("#sign-in-button")


def text_of(app: ConsoleApp, selector: str) -> str:
    """What a Static shows now, as plain text."""
    return str(app.screen.query_one(selector).render())


async def signed_in(pilot: Pilot[Any], hub: LiveHub, username: str) -> MainScreen:
    """Sign in as one of the site's people and wait for the main screen to be up."""
    await sign_in(pilot, username, hub.site.passwords[username])
    app = pilot.app
    await until(pilot, lambda: f"user:{username}" in header_text(app))
    screen = app.screen
    assert isinstance(screen, MainScreen)
    return screen


def header_text(app: ConsoleApp) -> str:
    """What the main screen's header shows now ("" before it is up).

    Waiting on this rather than on ``screen.sub_title`` waits for what the user sees: the
    header's own watcher has then run, so a test that leaves here leaves no update queued
    against a header being torn down (Textual's watcher then raised NoMatches(HeaderTitle)).
    """
    if not isinstance(app.screen, MainScreen):
        return ""
    try:
        return str(app.screen.query_one("HeaderTitle").render())
    except NoMatches:
        return ""


def notifications(app: ConsoleApp) -> str:
    """Every notification shown so far, joined."""
    return " | ".join(str(n.message) for n in app._notifications)


def column_of(app: ConsoleApp, table_id: str, key: str, column: int) -> str | None:
    """Column ``column`` of the row keyed ``key``, with the cursor put on that row."""
    table = app.screen.query_one(f"#{table_id}", DataTable)
    for i in range(table.row_count):
        row = [str(cell) for cell in table.get_row_at(i)]
        if row[0] == key:
            table.move_cursor(row=i)
            return row[column]
    return None


async def confirm(pilot: Pilot[Any], key: str) -> None:
    """Press ``key`` and say yes to the confirmation it asks."""
    await pilot.press(key)
    await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmDialog))
    await pilot.click("#confirm")
