"""``appliance hub backup|restore``: a consistent, verified copy of a hub, restored all or nothing.

One hub is set up for the module the way an operator would (CA and server
certificate in its data directory, the demo's people), with a registered tiny
model, a feature view in the offline and online stores, audit entries and a
signed checkpoint; it is backed up once and the archive reused.
"""

from __future__ import annotations

import io
import json
import secrets
import sqlite3
import stat
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from appliance.cli.main import main
from appliance.errors import ConfigError
from appliance.fsutil import sha256_file
from appliance.settings import HubSettings
from appliance.wire.features import (
    EntityDefinition,
    FeatureDefinitions,
    FeatureSpec,
    FeatureViewDefinition,
    KeyColumn,
)
from hub.backup import (
    BackupFormatError,
    BackupIntegrityError,
    backup_hub,
    read_manifest,
    restore_hub,
)
from hub.backup.manifest import FORMAT, FORMAT_VERSION, MANIFEST_MEMBER
from tests.conftest import POSTGRES_URL
from tests.harness.models import make_reference_npy, make_tiny_onnx

VIEW = FeatureViewDefinition(
    name="customer_stats",
    entity="customer",
    zone="ae-dxb",
    ttl_seconds=3600,
    features=[FeatureSpec(name="spend", dtype="float64")],
)
CUSTOMER = EntityDefinition(name="customer", join_keys=[KeyColumn(name="customer_id")])


def populate(settings: HubSettings) -> None:
    """A model, a feature view (offline and online), audit entries and a signed checkpoint."""
    from hub.db import session_scope
    from hub.services import build_services

    services = build_services(settings)
    try:
        services.registry.register_version(
            "tiny", make_tiny_onnx(), reference_npy=make_reference_npy(), actor="user:alice"
        )
        features = services.features
        features.define(FeatureDefinitions(entities=[CUSTOMER], feature_views=[VIEW]), actor="a")
        now = datetime.now(UTC)
        frame = pd.DataFrame(
            {"customer_id": [1, 2], "event_timestamp": [now - timedelta(minutes=5)] * 2}
            | {"spend": [1.5, 2.5]}
        )
        features.ingest("customer_stats", frame, actor="user:alice")
        features.materialize("customer_stats", actor="user:alice")
        with session_scope(services.engine) as session:
            for n in range(3):
                services.audit.append(
                    session, actor="user:sara", action="test.note", target=f"n/{n}", outcome="ok"
                )
        with session_scope(services.engine) as session:
            services.audit.checkpoint(session)
    finally:
        services.engine.dispose()


@pytest.fixture(scope="module")
def hub_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from appliance.cli.demo.site import bootstrap_site
    from appliance.security.tls import ca_dir, init_ca, issue_server_cert, tls_dir

    root = tmp_path_factory.mktemp("site")
    hub = root / "hub"
    ca = init_ca(ca_dir(hub))
    issue_server_cert(ca, tls_dir(hub), "hub", dns_names=("localhost",))
    bootstrap_site(root, tls=False)
    populate(HubSettings(data_dir=hub))
    return hub


@pytest.fixture(scope="module")
def archive(hub_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("backups") / "hub.tar"
    backup_hub(HubSettings(data_dir=hub_dir), out)
    return out


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# -- backing up -------------------------------------------------------------------------------


def test_the_archive_lists_every_file_with_its_hash_mode_and_the_audit_head(
    hub_dir: Path, archive: Path
) -> None:
    manifest = read_manifest(archive)
    assert (manifest.format, manifest.format_version) == (FORMAT, FORMAT_VERSION)
    assert manifest.database == "sqlite" and manifest.appliance_version
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    files = {entry.path: entry for entry in manifest.files}
    assert set(files) | {MANIFEST_MEMBER} == set(members(archive))
    for relative in ("keys/signing.key", "keys/tuf/root-1.key", "ca/ca.key", "tls/hub.key"):
        assert files[f"data/{relative}"].mode == 0o600
    for entry in manifest.files:
        if entry.path != "data/hub.db":
            assert sha256_file(hub_dir / entry.path.removeprefix("data/")) == (
                entry.sha256,
                entry.size,
            )
    kinds = {p.split("/")[1] for p in files}
    assert {"hub.db", "keys", "artifacts", "tuf", "features", "tls", "ca"} <= kinds
    assert any(p.endswith(".parquet") for p in files) and any(p.endswith(".arrow") for p in files)
    assert not any(p.endswith(("-wal", "-shm")) for p in files)
    with sqlite3.connect(hub_dir / "hub.db") as db:
        seq, digest = db.execute("SELECT seq, hash FROM audit_head").fetchone()
    assert (manifest.audit_head.seq, manifest.audit_head.hash) == (seq, digest) and seq >= 4
    modes = {d.path: d.mode for d in manifest.directories}
    assert modes["data/keys"] == 0o700 and "data/artifacts/tmp" in modes


def test_backup_refuses_to_write_inside_the_data_dir_or_over_a_file(
    hub_dir: Path, archive: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="inside the hub's data directory"):
        backup_hub(HubSettings(data_dir=hub_dir), hub_dir / "self.tar")
    with pytest.raises(ConfigError, match="exists already") as refused:
        backup_hub(HubSettings(data_dir=hub_dir), archive)
    assert refused.value.hint == "pass --force to replace it"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no hub database"):
        backup_hub(HubSettings(data_dir=tmp_path / "empty"), tmp_path / "x.tar")
    assert leftovers(tmp_path) == ["empty"]


# -- restoring --------------------------------------------------------------------------------


def test_restore_gives_back_a_hub_with_its_model_features_keys_and_verified_chain(
    hub_dir: Path, archive: Path, tmp_path: Path
) -> None:
    from hub.services import build_services

    target = tmp_path / "restored" / "hub"
    result = restore_hub(archive, target)
    assert result.audit.ok, result.audit.summary()
    assert result.audit.report.checkpoints_checked == 1
    assert leftovers(target.parent) == ["hub"]
    for entry in result.manifest.files:
        restored = target / entry.path.removeprefix("data/")
        assert stat.S_IMODE(restored.stat().st_mode) == entry.mode
        if entry.path != "data/hub.db":  # the audit check opened it since (WAL mode)
            assert restored.stat().st_mtime_ns == entry.mtime_ns
    assert stat.S_IMODE((target / "keys").stat().st_mode) == 0o700
    assert (target / "artifacts" / "tmp").is_dir()

    services = build_services(HubSettings(data_dir=target))
    try:
        model = services.registry.get_model("tiny")
        assert [v.version for v in model.versions] == [1]
        bundle, _info = services.registry.bundle_file("tiny", 1)
        assert bundle.is_file()
        assert services.key.key_id == build_key_id(hub_dir)
        answer = services.features.lookup("customer_stats", [1])
        assert answer.results[0].status == "ok"
        assert answer.results[0].values == {"spend": 1.5}
    finally:
        services.engine.dispose()


def build_key_id(data_dir: Path) -> str:
    from appliance.security.keys import keys_dir, load_keypair

    return load_keypair(keys_dir(data_dir)).key_id


def test_a_non_empty_target_is_refused_and_left_alone(archive: Path, tmp_path: Path) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        restore_hub(archive, target)
    assert leftovers(target) == ["keep.txt"] and leftovers(tmp_path) == ["busy"]


def flip_byte(archive: Path, dest: Path, member: str) -> Path:
    data = bytearray(archive.read_bytes())
    data[members(archive)[member].offset_data] ^= 0xFF
    dest.write_bytes(bytes(data))
    return dest


def test_a_changed_file_is_refused_by_name_and_nothing_is_written(
    archive: Path, tmp_path: Path
) -> None:
    tampered = flip_byte(archive, tmp_path / "tampered.tar", "data/keys/signing.pub")
    target = tmp_path / "new" / "hub"
    with pytest.raises(BackupIntegrityError, match=r"data/keys/signing\.pub does not match"):
        restore_hub(tampered, target)
    assert leftovers(tmp_path) == ["tampered.tar"]  # not even the parent folder was made


def test_a_truncated_or_foreign_archive_is_refused_and_nothing_is_written(
    archive: Path, tmp_path: Path
) -> None:
    data = archive.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(secrets.token_bytes(4096))
    for bad in (cut, garbage):
        with pytest.raises(BackupFormatError) as refused:
            restore_hub(bad, tmp_path / "out")
        assert refused.value.hint
    assert leftovers(tmp_path) == ["cut.tar", "garbage.tar"]


def crafted(path: Path, *entries: tarfile.TarInfo) -> Path:
    """A tar with the given members and an otherwise valid, empty manifest."""
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "appliance_version": "0",
        "created_at": "2026-01-01T00:00:00Z",
        "host": "h",
        "source_data_dir": "/x",
        "database": "sqlite",
        "audit_head": {"seq": 0, "hash": "0" * 64},
        "directories": [],
        "files": [],
    }
    with tarfile.open(path, "w") as tar:
        for entry in entries:
            tar.addfile(entry, io.BytesIO(b"x" * entry.size) if entry.isreg() else None)
        body = json.dumps(manifest).encode()
        info = tarfile.TarInfo(MANIFEST_MEMBER)
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, 1 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (_member("data/../../evil"), "unsafe path"),
        (_member("/etc/evil"), "unsafe path"),
        (_member("elsewhere/file"), "unexpected member"),
        (_member("data/keys/link", tarfile.SYMTYPE, "/etc/passwd"), "not a regular file"),
        (_member("data/keys/hard", tarfile.LNKTYPE, "data/hub.db"), "not a regular file"),
        (_member("data/hub.db"), "records are on sqlite but lists no data/hub.db"),
    ],
)
def test_unsafe_or_unlisted_members_are_refused(
    tmp_path: Path, member: tarfile.TarInfo, reason: str
) -> None:
    bad = crafted(tmp_path / "bad.tar", member)
    with pytest.raises(BackupFormatError, match=reason):
        restore_hub(bad, tmp_path / "out")
    assert leftovers(tmp_path) == ["bad.tar"]


def test_a_tampered_audit_chain_is_restored_but_reported_with_exit_3(
    archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = tmp_path / "first"
    restore_hub(archive, first)
    with sqlite3.connect(first / "hub.db") as db:
        db.execute("UPDATE audit_entries SET actor = 'user:mallory' WHERE seq = 2")
    again = tmp_path / "again.tar"
    assert main(["hub", "backup", "--data-dir", str(first), "--out", str(again)]) == 0
    assert main(["hub", "restore", str(again), "--data-dir", str(tmp_path / "second")]) == 3
    out = capsys.readouterr().out
    assert "backed up" in out and "audit: TAMPERED: first bad entry seq=2" in out


def test_restore_refuses_a_database_url_for_a_sqlite_backup(archive: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SQLite records"):
        restore_hub(archive, tmp_path / "x", database_url=POSTGRES_URL)
    assert leftovers(tmp_path) == []


# -- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture
def pg_databases() -> Iterator[tuple[str, str]]:
    """Two new, empty databases (source and restore target), dropped afterwards."""
    import psycopg

    admin_url = POSTGRES_URL.replace("postgresql+psycopg", "postgresql")
    try:
        conn = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    names = [f"bk_{secrets.token_hex(4)}" for _ in range(2)]
    for name in names:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{names[0]}", f"{base}/{names[1]}"
    finally:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


def test_a_postgresql_hub_is_dumped_and_restored_into_an_empty_database(
    pg_databases: tuple[str, str], tmp_path: Path
) -> None:
    from hub.db import session_scope
    from hub.services import build_services

    source_url, target_url = pg_databases
    settings = HubSettings(data_dir=tmp_path / "hub", database_url=source_url)
    services = build_services(settings)
    try:
        services.identity.create_user(
            "alice", secrets.token_urlsafe(12), ["ml-engineer"], actor="t"
        )
        with session_scope(services.engine) as session:
            services.audit.append(session, actor="t", action="test.note", target="n", outcome="ok")
    finally:
        services.engine.dispose()
    out = tmp_path / "pg.tar"
    manifest = backup_hub(settings, out).manifest
    assert manifest.database == "postgresql" and manifest.audit_head.seq >= 2
    assert "database/hub.pgdump" in members(out)

    with pytest.raises(ConfigError, match="pass --database-url"):
        restore_hub(out, tmp_path / "restored")
    with pytest.raises(ConfigError, match="already has"):
        restore_hub(out, tmp_path / "restored", database_url=source_url)
    assert not (tmp_path / "restored").exists()

    result = restore_hub(out, tmp_path / "restored", database_url=target_url)
    assert result.audit.ok, result.audit.summary()
    assert result.audit.report.entries_checked == manifest.audit_head.seq
    assert not any(p.name.endswith(".pgdump") for p in tmp_path.iterdir())


def test_large_files_are_streamed_not_read_into_memory(tmp_path: Path) -> None:
    import os
    import tracemalloc

    from appliance.security.keys import init_keypair, keys_dir
    from hub.db import make_engine
    from hub.schema import prepare

    hub = tmp_path / "hub"
    engine = make_engine(f"sqlite:///{hub / 'hub.db'}")
    prepare(engine)
    engine.dispose()
    init_keypair(keys_dir(hub))
    big = hub / "artifacts" / "sha256" / "ab" / ("ab" + "0" * 62)
    big.parent.mkdir(parents=True)
    with big.open("wb") as handle:
        for _ in range(48):
            handle.write(os.urandom(2**20))
    tracemalloc.start()
    try:
        backup_hub(HubSettings(data_dir=hub), tmp_path / "big.tar")
        restore_hub(tmp_path / "big.tar", tmp_path / "restored")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12 * 2**20, f"peak {peak / 2**20:.1f} MiB for a 48 MiB file"
    assert sha256_file(tmp_path / "restored" / big.relative_to(hub)) == sha256_file(big)
