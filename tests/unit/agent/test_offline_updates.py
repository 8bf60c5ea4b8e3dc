"""Offline update bundles: the same TUF checks from one file, bound to a group, fresh or not."""

from __future__ import annotations

import io
import json
import tarfile
from datetime import timedelta
from pathlib import Path

import pytest

from agent.offline_install import OVERRIDES_FILE, import_bundle
from agent.store import BundleStore
from appliance.clock import utcnow
from appliance.errors import (
    BundleFormatError,
    RollbackRefusedError,
    StaleUpdateError,
    UnprocessableInputError,
    UpdateRefusedError,
)
from appliance.trust.offline import OfflineBundle
from tests.harness.trust import (
    POLICY,
    build_golden,
    copy_site,
    hub_services,
    release,
)


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_golden(
        tmp_path_factory.mktemp("golden-offline"), ("edge-1", "default"), ("edge-lab", "lab")
    )


@pytest.fixture
def site(golden: Path, tmp_path: Path):
    root = copy_site(golden, tmp_path / "site")
    services = hub_services(root / "hub")
    yield root, services
    services.engine.dispose()


def export(services, out: Path, group: str = "default", days: int | None = None) -> Path:
    services.updates.export_offline(
        zone="ae-dxb", group=group, out=out, actor="user:root", days=days
    )
    return out


def test_bundle_installs_on_an_agent_with_no_network(site, tmp_path):
    root, services = site
    result = import_bundle(export(services, tmp_path / "u.tar"), root / "agent", POLICY)
    assert result.installed == [("tiny", 1)]
    assert BundleStore(root / "agent").current() == {"tiny": 1}
    again = import_bundle(tmp_path / "u.tar", root / "agent", POLICY)
    assert again.installed == [] and again.unchanged == [("tiny", 1)]
    records = [p.reason for p in services.updates.publications()]
    assert any("offline export for ae-dxb/default" in r for r in records)


def test_export_leaves_the_online_timestamp_short_lived(site, tmp_path):
    _root, services = site
    export(services, tmp_path / "u.tar", days=30)
    online = services.updates.repository.timestamp().signed.expires
    assert online < utcnow() + timedelta(days=2)
    with OfflineBundle(tmp_path / "u.tar", max_bytes=1 << 30) as bundle:
        assert bundle.header.expires_at > (utcnow() + timedelta(days=29)).isoformat()


def test_bundle_for_another_group_is_refused(site, tmp_path):
    root, services = site
    lab = export(services, tmp_path / "lab.tar", group="lab")
    with pytest.raises(UpdateRefusedError, match="group 'lab'"):
        import_bundle(lab, root / "agent", POLICY)
    assert BundleStore(root / "agent").current() == {}


def test_bundle_with_a_forged_group_header_still_gives_nothing(site, tmp_path):
    root, services = site
    lab = export(services, tmp_path / "lab.tar", group="lab")
    forged = tmp_path / "forged.tar"
    _rewrite(lab, forged, header=lambda h: {**h, "group": "default"})
    with pytest.raises(BundleFormatError, match="incomplete"):
        import_bundle(forged, root / "agent", POLICY)
    assert BundleStore(root / "agent").current() == {}


def test_an_older_bundle_replayed_is_refused(site, tmp_path):
    root, services = site
    old = export(services, tmp_path / "v1.tar")
    release(services, 2.0)
    new = export(services, tmp_path / "v2.tar")
    assert import_bundle(new, root / "agent", POLICY).installed == [("tiny", 2)]
    with pytest.raises(RollbackRefusedError):
        import_bundle(old, root / "agent", POLICY)
    assert BundleStore(root / "agent").current() == {"tiny": 2}


def test_stale_bundle_is_refused_and_the_override_is_recorded(site, tmp_path):
    root, services = site
    services.updates.repository.clock = lambda: utcnow() - timedelta(days=3)
    stale = export(services, tmp_path / "stale.tar", days=1)
    with pytest.raises(StaleUpdateError, match="allow-stale"):
        import_bundle(stale, root / "agent", POLICY)
    assert not (root / "agent" / OVERRIDES_FILE).exists()
    result = import_bundle(stale, root / "agent", POLICY, allow_stale=True)
    assert result.installed == [("tiny", 1)] and result.stale_override
    (line,) = (root / "agent" / OVERRIDES_FILE).read_text().splitlines()
    assert json.loads(line)["action"] == "import stale update bundle"


@pytest.mark.parametrize(
    "name",
    ["../escape.json", "metadata/../../escape.json", "/etc/passwd", "elsewhere/x.json"],
)
def test_unsafe_entry_names_are_refused(site, tmp_path, name):
    _root, services = site
    good = export(services, tmp_path / "u.tar")
    bad = tmp_path / "bad.tar"
    _rewrite(good, bad, extra=[_file(name, b"{}")])
    with pytest.raises(BundleFormatError, match="not allowed"):
        OfflineBundle(bad, max_bytes=1 << 30)


def test_links_in_a_bundle_are_refused(site, tmp_path):
    _root, services = site
    good = export(services, tmp_path / "u.tar")
    bad = tmp_path / "bad.tar"
    link = tarfile.TarInfo("metadata/timestamp2.json")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/shadow"
    _rewrite(good, bad, extra=[(link, None)])
    with pytest.raises(BundleFormatError, match="link"):
        OfflineBundle(bad, max_bytes=1 << 30)


def test_a_file_that_is_not_a_bundle_gets_a_clear_error(tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"definitely not a tar" * 100)
    with pytest.raises(BundleFormatError, match="not an update bundle"):
        OfflineBundle(junk, max_bytes=1 << 30)


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _rewrite(src: Path, dst: Path, *, header=None, extra=()) -> None:
    with tarfile.open(src) as old, tarfile.open(dst, "w") as new:
        for member in old.getmembers():
            data = old.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "update.json" and header is not None:
                data = json.dumps(header(json.loads(data))).encode()
                member.size = len(data)
            new.addfile(member, io.BytesIO(data))
        for info, data in extra:
            new.addfile(info, io.BytesIO(data) if data is not None else None)


@pytest.mark.parametrize("days", [0, -1, 31, 36500, 3_000_000])
def test_an_export_valid_longer_than_the_site_allows_is_refused(site, tmp_path, days):
    """Issue 14, finding 11: a century-long timestamp would defeat freeze protection."""
    _root, services = site
    with pytest.raises(UnprocessableInputError, match="days"):
        export(services, tmp_path / "u.tar", days=days)
    assert not (tmp_path / "u.tar").exists()


def test_a_flipped_byte_in_the_unsigned_header_is_a_clean_format_error(site, tmp_path):
    _root, services = site
    good = export(services, tmp_path / "u.tar")
    bad = tmp_path / "bad.tar"
    with tarfile.open(good) as old, tarfile.open(bad, "w") as new:
        for member in old.getmembers():
            data = old.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "update.json":
                data = data.replace(b"{", b"\xfb", 1)
            new.addfile(member, io.BytesIO(data))
    with pytest.raises(BundleFormatError, match=r"update\.json"):
        OfflineBundle(bad, max_bytes=1 << 30)
