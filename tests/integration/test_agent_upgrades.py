"""Issue 16: agent upgrades ring by ring through the hub, as its API and scheduler run them.

A real hub (its gates judged every 0.2 s) holding a signed agent release, and enrolled
agents speaking to it over HTTP with their own keys: they read their assignments and say
in heartbeats which release they run, or that their upgrade failed and they went back,
as an agent does once its host's ``appliance upgrade`` has run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import create_engine
from sqlmodel import Session

from agent.self_upgrade import SelfUpgrade
from appliance.cli.demo.processes import ServiceProcess
from appliance.cli.demo.site import Site
from appliance.client.hub import HubClient
from appliance.clock import utcnow
from appliance.errors import HubRejectedError
from appliance.security.credentials import AgentCredentials
from appliance.security.keys import KeyPair, init_keypair, public_pem
from appliance.wire.fleet import EnrolmentRequest, Heartbeat, NewAgentUpgrade, UpgradeFailure
from appliance.wire.upgrades import ARCHIVES, RESULT_FILE, UpgradeRequest, UpgradeResult
from hub.agent_upgrades.records import AgentUpgradeRecord
from tests.harness.releases import signed_release
from tests.harness.site import running_hub, wait_until

pytestmark = pytest.mark.integration

OLD, NEW = "0.1.0", "0.2.0"
GRACE_S = 1800
"""This site's install grace (default 900): its slow boxes take half an hour to install."""


@pytest.fixture(scope="module")
def release_key(workdir: Path) -> KeyPair:
    return init_keypair(workdir / "release-key", "release")


@pytest.fixture(scope="module")
def hub(site: Site, workdir: Path, release_key: KeyPair) -> Iterator[ServiceProcess]:
    env = {
        "APPLIANCE_RELEASE_KEY": str(workdir / "release-key" / "release.pub"),
        "APPLIANCE_ROLLOUT_CHECK_S": "0.2",
        "APPLIANCE_AGENT_INSTALL_GRACE_S": str(GRACE_S),
    }
    with running_hub(site, env=env) as proc:
        yield proc


@pytest.fixture(scope="module")
def held(admin: HubClient, release_key: KeyPair, workdir: Path) -> str:
    with signed_release(workdir / "releases", release_key, NEW).open("rb") as archive:
        return admin.upload_agent_release(archive).version


class Agent:
    """An enrolled agent as the hub sees it over HTTP."""

    def __init__(self, hub: ServiceProcess, admin: HubClient, name: str, group: str, keys: Path):
        token = admin.create_enrolment_token("ae-dxb", group)["token"]
        key = init_keypair(keys / name, "agent")
        request = EnrolmentRequest(
            token=token, name=name, public_key=public_pem(key.public).decode(), runtime="onnx"
        )
        with HubClient(hub.url) as anonymous:
            self.info = anonymous.enrol(request)
        self.client = HubClient(hub.url, credentials=AgentCredentials(key, self.info.id))
        self.runs(OLD)

    @property
    def id(self) -> int:
        return self.info.id

    def runs(
        self, version: str, failed: UpgradeFailure | None = None, upgrading: str | None = None
    ) -> None:
        beat = Heartbeat(software_version=version, upgrade_failed=failed, upgrading=upgrading)
        self.client.heartbeat(self.id, beat)

    def asked_for(self) -> str | None:
        target = self.client.assignments(self.id).software
        return target.version if target else None


@pytest.fixture(scope="module")
def fleet(hub: ServiceProcess, admin: HubClient, workdir: Path) -> Iterator[dict[str, Agent]]:
    agents = {
        name: Agent(hub, admin, name, group, workdir / "agent-keys")
        for name, group in [
            *((f"a{n}", "fleet-a") for n in range(1, 5)),
            ("b1", "fleet-b"),
            ("b2", "fleet-b"),
            ("c1", "fleet-c"),
        ]
    }
    yield agents
    for agent in agents.values():
        agent.client.close()


def test_rings_move_on_as_agents_come_back_upgraded_and_a_failed_one_halts_the_rest(
    held: str, fleet: dict[str, Agent], admin: HubClient, engineer: HubClient
) -> None:
    a1, a2, a3, a4 = (fleet[f"a{n}"] for n in range(1, 5))
    spec = NewAgentUpgrade(
        version=held, zone="ae-dxb", group="fleet-a", rings=[0.25, 1.0], soak_s=0
    )
    with pytest.raises(HubRejectedError) as not_admin:
        engineer.start_agent_upgrade(spec)
    assert not_admin.value.status_code == 403

    upgrade = admin.start_agent_upgrade(spec)
    assert (upgrade.state, upgrade.ring, upgrade.agents_reached) == ("running", 1, [a1.id])
    assert [a.asked_for() for a in (a1, a2, a3, a4)] == [NEW, None, None, None]
    with pytest.raises(HubRejectedError) as busy:
        admin.start_agent_upgrade(spec)
    assert busy.value.status_code == 409

    # ring 1 waits for its agent: the release runs there, but its host still checks it
    a1.runs(NEW, upgrading=NEW)
    assert admin.get_agent_upgrade(upgrade.id).agents_upgraded == []
    # the host's upgrader is done: it counts, and ring 2 begins
    a1.runs(NEW)
    wait_until("ring 2", lambda: admin.get_agent_upgrade(upgrade.id).ring == 2)
    assert [a.asked_for() for a in (a1, a2, a3, a4)] == [NEW] * 4

    # a4's host could not run it and went back: the upgrade halts; a4 is asked for nothing
    a2.runs(NEW)
    a4.runs(OLD, failed=UpgradeFailure(version=NEW, reason="/v2 answered 500; rolled back"))
    halted = wait_until(
        "the halt",
        lambda: (u := admin.get_agent_upgrade(upgrade.id)).state == "halted" and u,
    )
    assert [f["name"] for f in halted.failed] == ["a4"]
    assert "rolled back" in halted.failed[0]["reason"]
    assert a4.asked_for() is None
    assert [a.asked_for() for a in (a1, a2, a3)] == [NEW] * 3  # the upgraded keep it
    a3.runs(NEW)
    assert admin.get_agent_upgrade(upgrade.id).state == "halted"  # halted stays halted
    actions = [e["action"] for e in admin.list_audit(limit=500) if "agent_upgrade" in e["action"]]
    assert "agent_upgrade.start" in actions and "agent_upgrade.halt" in actions
    refused = admin.list_audit(action="access.refused", limit=500)
    assert any("agent-upgrades" in e["target"] for e in refused)  # the engineer's try


def test_an_aborted_upgrade_asks_no_further_agent(
    held: str, fleet: dict[str, Agent], admin: HubClient
) -> None:
    b1, b2 = fleet["b1"], fleet["b2"]
    spec = NewAgentUpgrade(
        version=held, zone="ae-dxb", group="fleet-b", rings=[0.5, 1.0], soak_s=3600
    )
    upgrade = admin.start_agent_upgrade(spec)
    b1.runs(NEW)

    aborted = admin.abort_agent_upgrade(upgrade.id)

    assert aborted.state == "aborted" and aborted.ring == 1
    assert (b1.asked_for(), b2.asked_for()) == (NEW, None)
    with pytest.raises(HubRejectedError) as again:
        admin.abort_agent_upgrade(upgrade.id)
    assert again.value.status_code == 409


def test_a_completed_upgrade_asks_every_agent_of_the_group_even_new_ones(
    hub: ServiceProcess, held: str, fleet: dict[str, Agent], admin: HubClient, workdir: Path
) -> None:
    c1 = fleet["c1"]
    spec = NewAgentUpgrade(version=held, zone="ae-dxb", group="fleet-c", rings=[1.0], soak_s=0)
    upgrade = admin.start_agent_upgrade(spec)
    c1.runs(NEW)
    wait_until("completion", lambda: admin.get_agent_upgrade(upgrade.id).state == "completed")

    late = Agent(hub, admin, "c2", "fleet-c", workdir / "agent-keys")
    try:
        assert late.asked_for() == NEW
    finally:
        late.client.close()


def test_an_agent_not_back_on_the_release_within_the_sites_grace_halts_the_upgrade(
    held: str, hub: ServiceProcess, admin: HubClient, site: Site, workdir: Path
) -> None:
    e1 = Agent(hub, admin, "e1", "fleet-e", workdir / "agent-keys")
    try:
        spec = NewAgentUpgrade(version=held, zone="ae-dxb", group="fleet-e", rings=[1.0], soak_s=0)
        upgrade = admin.start_agent_upgrade(spec)
        assert e1.asked_for() == NEW
        # the install takes longer than the site allows (its host never came back on it):
        # the ring began GRACE_S + 60 s ago, as if that much time had gone by
        engine = create_engine(f"sqlite:///{site.hub_dir / 'hub.db'}")
        with Session(engine) as session:
            record = session.get(AgentUpgradeRecord, upgrade.id)
            assert record is not None
            record.ring_started_at = utcnow() - timedelta(seconds=GRACE_S + 60)
            session.add(record)
            session.commit()
        engine.dispose()

        halted = wait_until(
            "the halt", lambda: (u := admin.get_agent_upgrade(upgrade.id)).state == "halted" and u
        )
        assert f"not on {NEW} {GRACE_S} s after the ring began: e1 ({OLD})" in str(halted.steps)
    finally:
        e1.client.close()


def test_an_upgrade_to_a_release_the_hub_does_not_hold_is_refused(admin: HubClient) -> None:
    spec = NewAgentUpgrade(version="9.9.9", zone="ae-dxb", group="fleet-z", rings=[1.0])
    with pytest.raises(HubRejectedError) as missing:
        admin.start_agent_upgrade(spec)
    assert missing.value.status_code == 404 and "no agent release 9.9.9" in str(missing.value)
    bad_rings = NewAgentUpgrade(version="9.9.9", zone="ae-dxb", rings=[0.5])
    with pytest.raises(HubRejectedError) as refused:
        admin.start_agent_upgrade(bad_rings)
    assert refused.value.status_code == 400 and "rings" in str(refused.value)


def test_an_agent_fetches_the_release_asks_its_host_once_and_refuses_a_swapped_archive(
    hub: ServiceProcess,
    held: str,
    admin: HubClient,
    site: Site,
    workdir: Path,
    tmp_path: Path,
) -> None:
    """The agent's side (agent.self_upgrade) against the real hub: it fetches what its
    assignments name, checks the SHA-256 the hub gave, and writes one request for its
    host's upgrader; a failed answer is remembered and not asked again; an archive swapped
    on the hub's disk is refused and nothing is asked."""
    agent = Agent(hub, admin, "d1", "fleet-d", workdir / "agent-keys")
    try:
        spec = NewAgentUpgrade(version=held, zone="ae-dxb", group="fleet-d", rings=[1.0])
        admin.start_agent_upgrade(spec)
        target = agent.client.assignments(agent.id).software
        assert target is not None and target.version == NEW
        upgrade = SelfUpgrade(tmp_path / "d1")

        upgrade.consider(agent.client, target)

        request = msgspec.json.decode(upgrade.request_file.read_bytes(), type=UpgradeRequest)
        fetched = tmp_path / "d1" / ARCHIVES / request.archive
        assert hashlib.sha256(fetched.read_bytes()).hexdigest() == target.archive_sha256
        assert upgrade.upgrading == NEW
        stamp = upgrade.request_file.stat().st_mtime_ns
        upgrade.consider(agent.client, target)  # one request at a time
        assert upgrade.request_file.stat().st_mtime_ns == stamp

        # the host's upgrader answers: it failed and went back
        result = UpgradeResult(version=NEW, ok=False, said="/v2 answered 500; rolled back")
        (tmp_path / "d1" / RESULT_FILE).write_bytes(msgspec.json.encode(result))
        upgrade.request_file.unlink()
        upgrade.consider(agent.client, target)
        assert upgrade.failed is not None and upgrade.failed.version == NEW
        assert not upgrade.request_file.exists(), "a failed release is not asked for again"

        # an archive swapped on the hub's disk: refused, nothing asked
        stored = site.hub_dir / "agent-releases" / f"appliance-agent-{NEW}.tar"
        original = stored.read_bytes()
        stored.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        try:
            other = SelfUpgrade(tmp_path / "d2")
            other.consider(agent.client, target)
        finally:
            stored.write_bytes(original)
        assert other.problem is not None and "SHA-256" in other.problem
        assert not other.request_file.exists()
        assert not list((tmp_path / "d2" / ARCHIVES).iterdir())
    finally:
        agent.client.close()
