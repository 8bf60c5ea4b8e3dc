"""The TUF attacks and faults an agent must refuse, each against the real client and hub service.

The hub side is the real update service on SQLite; the agent side is the real
``tuf.ngclient`` client and installer. Between them, :class:`SiteFetcher` plays
the network or a tampered hub disk (see ``tests/harness/trust.py``).
"""

from __future__ import annotations

import itertools
import re
import shutil
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata, TargetFile

from agent.installer import DeviceKey, load_slot, stage
from agent.store import BundleStore
from agent.updates.trusted import Offer, metadata_dir
from appliance.clock import utcnow
from appliance.errors import (
    DecryptionError,
    IntegrityError,
    RollbackRefusedError,
    SignatureError,
    StaleUpdateError,
    UpdateRefusedError,
)
from appliance.fsutil import file_lock, sha256_bytes
from appliance.security.keys import init_keypair
from hub.updates.repository import signer_for
from tests.harness.trust import (
    ADMIN,
    POLICY,
    SiteFetcher,
    build_golden,
    copy_site,
    enrol_agent,
    hub_services,
    principal_for,
    release,
    updates_for,
)

ROLE = "ae-dxb.default"


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_golden(tmp_path_factory.mktemp("golden"))


class Site:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.services = hub_services(root / "hub")
        self.agent_dir = root / "agent"
        from agent.identity import device_key, load_identity

        identity = load_identity(self.agent_dir)
        assert identity is not None
        self.identity = identity
        self.key: DeviceKey = device_key(self.agent_dir, identity)
        self.fetcher = SiteFetcher(self.services, principal_for(identity))
        self.store = BundleStore(self.agent_dir)

    def updates(self):  # a fresh refresh, as each sync round makes
        return updates_for(self.agent_dir, self.identity, self.fetcher)

    def install(self) -> list[tuple[str, int]]:
        """One sync round, as the agent's loop runs it (download, stage, commit)."""
        updates = self.updates()
        done = []
        for offer in updates.offers():
            work = self.store.new_staging_dir()
            try:
                model = stage(
                    updates.download(offer, work / "t"), offer, self.key, self.store, POLICY
                )
            finally:
                shutil.rmtree(work, ignore_errors=True)
            self.store.commit(model.name, model.version, offer.target_sha256)
            done.append((model.name, model.version))
        return done


@pytest.fixture
def site(golden: Path, tmp_path: Path):
    s = Site(copy_site(golden, tmp_path / "site"))
    yield s
    s.services.engine.dispose()


def _flip(_url: str, data: bytes) -> bytes:
    return data[:-100] + bytes([data[-100] ^ 1]) + data[-99:]


# -- the honest path ---------------------------------------------------------------------


def test_agent_installs_its_groups_production_version_encrypted_at_rest(site):
    assert site.install() == [("tiny", 1)]
    slot = site.store.path("tiny", 1)
    assert sorted(p.name for p in slot.iterdir()) == ["sealed.tar", "sealing.json"]
    assert site.store.current() == {"tiny": 1}
    assert list(site.store.staging.iterdir()) == []


def test_promotion_publishes_and_a_repeat_publish_changes_nothing(site):
    before = site.services.updates.repository.timestamp().signed.version
    release(site.services, 2.0)
    after = site.services.updates.repository.timestamp().signed.version
    assert after == before + 1
    assert site.services.updates.publish(actor="test", reason="again").changed == []
    assert [(o.name, o.version) for o in site.updates().offers()] == [("tiny", 2)]
    kinds = [p.reason for p in site.services.updates.publications()]
    assert "tiny v2 moved to production" in kinds


# -- attacks -------------------------------------------------------------------------------


def test_tampered_target_bytes_are_refused(site):
    site.fetcher.mutate[".tiny.v1.tar"] = _flip
    with pytest.raises(IntegrityError):
        site.install()
    assert site.store.current() == {}
    assert list(site.store.staging.iterdir()) == []


def test_target_signed_by_an_untrusted_key_is_refused(site, tmp_path):
    attacker = init_keypair(tmp_path / "attacker", "evil")
    evil = b"not the hub's model"

    def forge(_url: str, data: bytes) -> bytes:
        md = Metadata.from_bytes(data)
        md.signed.targets["ae-dxb/default/tiny.v1.tar"] = TargetFile(
            length=len(evil),
            hashes={"sha256": sha256_bytes(evil)},
            path="ae-dxb/default/tiny.v1.tar",
        )
        md.signatures.clear()
        md.sign(signer_for(attacker))
        return md.to_bytes()

    site.fetcher.mutate[f".{ROLE}.json"] = forge
    with pytest.raises(SignatureError, match="not signed by enough trusted keys"):
        site.updates().offers()


def test_root_rotation_below_threshold_is_refused(site, tmp_path):
    repo = site.services.updates.repository
    new = [init_keypair(tmp_path / "offline", f"root-{i}") for i in (1, 2)]
    repo.rotate_root(old_root_keys=repo.root_keys_here(), new_root_keys=new, threshold=2)
    assert site.updates().offers()  # v2 root, signed properly, is accepted
    # The next root carries only one of the two signatures v2 demands.
    repo.rotate_root(old_root_keys=new, new_root_keys=new, threshold=2)
    v3 = Metadata.from_bytes(repo.root_bytes(3))
    v3.signatures.pop(next(iter(v3.signatures)))
    site.fetcher.mutate["/3.root.json"] = lambda _u, _d: v3.to_bytes()
    with pytest.raises(SignatureError):
        site.updates().offers()


def test_two_processes_reading_the_metadata_at_once_take_turns(site):
    """The serving agent and `appliance bundle import` on one data directory: python-tuf
    replaces root.json (remove, then symlink) as it starts, and two at once failed with
    FileExistsError (seen in a clean-clone run). Each waits for the other's lock."""
    site.updates().index()  # the folder as a running agent leaves it
    done: list[object] = []

    def read() -> None:
        try:
            done.append(site.updates().index())
        except Exception as exc:  # the test reports what it was
            done.append(exc)

    with file_lock(metadata_dir(site.agent_dir) / "writing.lock"):
        second = threading.Thread(target=read)
        second.start()
        second.join(timeout=1.0)
        assert second.is_alive() and not done, "it waits while another writes the folder"
    second.join(timeout=60)
    readers = [threading.Thread(target=read) for _ in range(6)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(timeout=60)
    assert len(done) == 7 and not [d for d in done if isinstance(d, Exception)], done


def test_rollback_to_older_metadata_is_refused(site):
    old_timestamp = site.services.updates.repository.path("timestamp.json").read_bytes()
    release(site.services, 2.0)
    assert [o.version for o in site.updates().offers()] == [2]
    site.fetcher.mutate["/timestamp.json"] = lambda _u, _d: old_timestamp
    with pytest.raises(RollbackRefusedError):
        site.updates().offers()


def test_expired_timestamp_is_refused_as_a_freeze(site):
    repo = site.services.updates.repository
    repo.clock = lambda: utcnow() - timedelta(days=3)  # metadata signed long ago, never renewed
    repo.shorten_timestamp()
    with pytest.raises(StaleUpdateError, match="expired"):
        site.updates().offers()


def test_mix_and_match_of_publications_is_refused(site):
    repo = site.services.updates.repository
    old_role = repo.path(f"{repo.snapshot().signed.meta[f'{ROLE}.json'].version}.{ROLE}.json")
    old_bytes = old_role.read_bytes()
    release(site.services, 2.0)  # new snapshot names a newer group role …
    site.fetcher.mutate[f".{ROLE}.json"] = lambda _u, _d: old_bytes  # … served the older one
    with pytest.raises(UpdateRefusedError, match=re.escape(f"Expected {ROLE} v3, got v2")):
        site.updates().offers()


def test_fast_forward_attack_recovers_after_timestamp_key_rotation(site):
    repo = site.services.updates.repository
    stolen = repo.online_key("timestamp")

    def fast_forward(_url: str, data: bytes) -> bytes:
        md = Metadata.from_bytes(data)
        md.signed.version = 99_999
        md.signatures.clear()
        md.sign(signer_for(stolen))
        return md.to_bytes()

    site.fetcher.mutate["/timestamp.json"] = fast_forward
    site.updates().offers()  # the agent now trusts timestamp v99999
    del site.fetcher.mutate["/timestamp.json"]
    release(site.services, 2.0)
    with pytest.raises(RollbackRefusedError):  # honest v-next looks like a rollback …
        site.updates().offers()
    repo.rotate_root(  # … until the hub replaces the stolen key
        old_root_keys=repo.root_keys_here(),
        new_root_keys=repo.root_keys_here(),
        threshold=1,
        rotate_online=["timestamp"],
    )
    assert [o.version for o in site.updates().offers()] == [2]


def test_endless_target_is_cut_at_its_signed_length(site):
    site.fetcher.replace[".tiny.v1.tar"] = lambda: itertools.repeat(b"\0" * 65536)
    with pytest.raises(IntegrityError, match=r"more than the \d+ bytes signed for it"):
        site.install()
    assert site.store.current() == {}
    assert list(site.store.staging.iterdir()) == []


def test_targets_of_another_group_are_invisible(site):
    enrol_agent(site.services, site.root / "other", "edge-other", group="lab")
    repo = site.services.updates.repository
    assert repo.groups() == [("ae-dxb", "default"), ("ae-dxb", "lab")]
    lab = repo.targets("ae-dxb.lab")
    site.fetcher.mutate[f".{ROLE}.json"] = lambda _u, _d: lab.to_bytes()  # lab's role served
    with pytest.raises(UpdateRefusedError, match=r"Expected ae-dxb\.default"):
        site.updates().offers()
    # Worst case: a hub bug serves lab's role with the right version, validly signed.
    lab.signed.version = repo.targets(ROLE).signed.version
    lab.signatures.clear()
    lab.sign(signer_for(repo.online_key("groups")))
    assert site.updates().offers() == []  # lab's paths are not this group's: nothing to install


def test_a_copied_encrypted_model_does_not_open_on_another_agent(site):
    site.install()
    other_dir = site.root / "other"
    other = enrol_agent(site.services, other_dir, "edge-2")
    from agent.identity import device_key

    stranger = device_key(other_dir, other)
    with pytest.raises(DecryptionError, match="not addressed to this device"):
        load_slot(site.store.path("tiny", 1), stranger, BundleStore(other_dir), POLICY)


def test_a_target_without_this_agents_key_is_refused_before_loading(site):
    updates = site.updates()
    (offer,) = updates.offers()
    assert offer.custom.encryption is not None and offer.wrapped is not None
    stripped = Offer(target=offer.target, custom=offer.custom, wrapped=None)
    work = site.store.new_staging_dir()
    with pytest.raises(DecryptionError, match="not addressed to this agent"):
        stage(updates.download(offer, work / "t"), stripped, site.key, site.store, POLICY)
    assert site.store.current() == {}


def test_the_signed_metadata_grows_with_models_plus_agents(site):
    for i in range(2, 5):
        enrol_agent(site.services, site.root / f"a{i}", f"edge-{i}")
    role = site.services.updates.repository.targets(ROLE).signed
    paths = sorted(role.targets)
    assert paths == [f"ae-dxb/default/agent-{i}.keys.json" for i in range(1, 5)] + [
        "ae-dxb/default/tiny.v1.tar"
    ]
    assert "keys" not in role.targets["ae-dxb/default/tiny.v1.tar"].custom["encryption"]


def test_revoked_agent_gets_no_key_for_the_next_version(site):
    site.services.enrolment.revoke(ADMIN, site.identity.agent_id)
    release(site.services, 2.0)
    role = site.services.updates.repository.targets(ROLE).signed
    assert f"ae-dxb/default/agent-{site.identity.agent_id}.keys.json" not in role.targets
    with pytest.raises(DecryptionError, match="not addressed to this agent"):
        site.install()  # even past the hub's refusal to serve it, v2 does not open here


def test_the_hourly_job_re_signs_the_timestamp_before_it_expires(site):
    updates = site.services.updates
    assert updates.refresh() is None  # freshly signed: nothing to do
    before = updates.repository.timestamp().signed
    updates.repository.clock = lambda: utcnow() + timedelta(hours=20)  # 4 h left of 24
    publication = updates.refresh()
    assert publication is not None and "timestamp" in publication.changed
    after = updates.repository.timestamp().signed
    assert after.version == before.version + 1 and after.expires > before.expires
    assert updates.publications()[-1].reason == "scheduled re-signing"
    assert updates.refresh() is None
