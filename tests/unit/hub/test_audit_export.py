"""Audit export and the ``appliance audit`` commands, as an operator and an auditor use them."""

from __future__ import annotations

import argparse
import json
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import hub.audit.records  # noqa: F401  (registers the audit tables before create_schema)
from appliance.cli import audit as audit_cli
from appliance.cli.output import fail
from appliance.errors import ApplianceError
from appliance.security.keys import init_keypair, keys_dir, load_keypair, load_public_key
from hub.audit import (
    AuditFormatError,
    AuditLog,
    checkpoints_path,
    export_log,
    read_checkpoints,
    read_entries,
    verify_chain,
)
from hub.db import session_scope
from tests.conftest import POSTGRES_URL


def run_cli(*argv: str) -> int:
    """``appliance …`` as ``appliance.cli.main`` runs it, with the audit commands wired in."""
    parser = argparse.ArgumentParser(prog="appliance")
    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument("--data-dir", type=lambda v: Path(v).expanduser())
    sub = parser.add_subparsers(dest="command", required=True)
    audit_cli.add_parsers(sub, data_dir)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ApplianceError as exc:
        fail(exc.message, exc.hint)
        return 2


@pytest.fixture
def hub_dir(engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The hub's data directory over the ``engine`` database, as the CLI would find it."""
    monkeypatch.delenv("APPLIANCE_DATA_DIR", raising=False)
    monkeypatch.delenv("APPLIANCE_DATABASE_URL", raising=False)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            schema = conn.execute(text("SHOW search_path")).scalar()
        monkeypatch.setenv(
            "APPLIANCE_DATABASE_URL", f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        )
    else:
        assert (tmp_path / "hub.db").is_file()  # the engine fixture's SQLite file
    init_keypair(keys_dir(tmp_path))
    return tmp_path


@pytest.fixture
def log(hub_dir: Path) -> AuditLog:
    return AuditLog(load_keypair(keys_dir(hub_dir)))


def append_n(engine: Any, log: AuditLog, n: int) -> None:
    for i in range(n):
        with session_scope(engine) as session:
            log.append(
                session,
                actor="user:alice",
                action="auth.sign_in",
                target="user:alice",
                outcome="ok" if i % 2 else "refused",
                source="198.51.100.4",
                detail={"attempt": i},
            )


def checkpoint(engine: Any, log: AuditLog) -> None:
    with session_scope(engine) as session:
        log.checkpoint(session)


@pytest.fixture
def exported(engine: Any, log: AuditLog, hub_dir: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """12 entries, a checkpoint at seq 10, exported through the CLI."""
    append_n(engine, log, 10)
    checkpoint(engine, log)
    append_n(engine, log, 2)
    out = hub_dir / "export" / "audit.jsonl"
    assert run_cli("audit", "export", "--data-dir", str(hub_dir), "--out", str(out)) == 0
    assert f"exported 12 entries to {out} and 1 checkpoints" in capsys.readouterr().out
    return out


def auditor_copy(export: Path, hub_dir: Path, dest: Path) -> tuple[Path, Path]:
    """What an auditor carries away: the two export files and the public key, nothing else."""
    dest.mkdir()
    shutil.copy(export, dest / export.name)
    shutil.copy(checkpoints_path(export), checkpoints_path(dest / export.name))
    shutil.copy(keys_dir(hub_dir) / "signing.pub", dest / "hub.pub")
    return dest / export.name, dest / "hub.pub"


def test_export_verifies_offline_with_only_the_public_key(
    exported, hub_dir, tmp_path_factory, monkeypatch, capsys
):
    export, public = auditor_copy(exported, hub_dir, tmp_path_factory.mktemp("a") / "auditor")
    monkeypatch.setenv("APPLIANCE_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert run_cli("audit", "verify", "--export", str(export), "--public-key", str(public)) == 0
    assert capsys.readouterr().out.strip() == "OK: 12 entries, 1 checkpoints"
    report = verify_chain(
        read_entries(export), read_checkpoints(checkpoints_path(export)), load_public_key(public)
    )
    assert report.ok and report.entries_checked == 12


def test_export_files_are_canonical_json_lines_readable_by_the_owner_only(exported):
    lines = exported.read_bytes().splitlines()
    assert len(lines) == 12 and [json.loads(line)["seq"] for line in lines] == list(range(1, 13))
    first = json.loads(lines[0])
    assert set(first) == {
        "seq", "at", "actor", "action", "target", "outcome", "source", "detail", "prev_hash",
        "hash",
    }  # fmt: skip
    assert lines[0] == json.dumps(first, sort_keys=True, separators=(",", ":")).encode()
    (cp,) = [json.loads(line) for line in checkpoints_path(exported).read_bytes().splitlines()]
    assert cp["seq"] == 10 and cp["head_hash"] == json.loads(lines[9])["hash"]
    for path in (exported, checkpoints_path(exported)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_truncated_export_is_tampered_naming_the_checkpoint(exported, hub_dir, capsys):
    lines = exported.read_bytes().splitlines(keepends=True)
    exported.write_bytes(b"".join(lines[:7]))
    public = keys_dir(hub_dir) / "signing.pub"
    assert run_cli("audit", "verify", "--export", str(exported), "--public-key", str(public)) == 3
    out = capsys.readouterr().out
    assert out.startswith("TAMPERED: first bad entry seq=8: ")
    assert "checkpoint seq=10" in out


def test_an_edited_export_line_is_tampered_naming_the_entry(exported, hub_dir, capsys):
    lines = exported.read_bytes().splitlines(keepends=True)
    edited = json.loads(lines[3])
    edited["outcome"] = "ok" if edited["outcome"] == "refused" else "refused"
    lines[3] = json.dumps(edited).encode() + b"\n"
    exported.write_bytes(b"".join(lines))
    public = keys_dir(hub_dir) / "signing.pub"
    assert run_cli("audit", "verify", "--export", str(exported), "--public-key", str(public)) == 3
    assert capsys.readouterr().out.startswith("TAMPERED: first bad entry seq=4: ")


def test_a_malformed_export_line_counts_as_tampered(exported, hub_dir, capsys):
    lines = exported.read_bytes().splitlines(keepends=True)
    lines[4] = b'{"seq": 5, "actor": "user:mallory"}\n'
    exported.write_bytes(b"".join(lines))
    with pytest.raises(AuditFormatError, match="line 5"):
        list(read_entries(exported))
    public = keys_dir(hub_dir) / "signing.pub"
    assert run_cli("audit", "verify", "--export", str(exported), "--public-key", str(public)) == 3
    out = capsys.readouterr().out
    assert out.startswith("TAMPERED: ") and "line 5 is not a valid audit entry" in out


def test_a_forged_checkpoint_in_an_export_is_refused(exported, hub_dir, capsys):
    path = checkpoints_path(exported)
    cp = json.loads(path.read_bytes())
    cp["seq"] = 12  # claim the signature covers the newest entry too
    path.write_text(json.dumps(cp) + "\n")
    public = keys_dir(hub_dir) / "signing.pub"
    assert run_cli("audit", "verify", "--export", str(exported), "--public-key", str(public)) == 3
    out = capsys.readouterr().out
    assert out.startswith("TAMPERED: checkpoint seq=12") and "does not verify" in out


def test_verify_reads_the_hub_database_and_names_the_edited_entry(engine, log, hub_dir, capsys):
    append_n(engine, log, 5)
    checkpoint(engine, log)
    assert run_cli("audit", "verify", "--data-dir", str(hub_dir)) == 0
    assert capsys.readouterr().out.strip() == "OK: 5 entries, 1 checkpoints"
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_entries SET target = 'model:other@9' WHERE seq = 3"))
    assert run_cli("audit", "verify", "--data-dir", str(hub_dir)) == 3
    assert capsys.readouterr().out.strip() == (
        "TAMPERED: first bad entry seq=3: its contents do not match its hash (the entry was edited)"
    )


def test_checkpoints_kept_from_an_earlier_export_catch_a_covered_up_truncation(
    exported, engine, hub_dir, capsys
):
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE seq > 7"))
        conn.execute(text("DELETE FROM audit_checkpoints"))
    assert run_cli("audit", "verify", "--data-dir", str(hub_dir)) == 0  # nothing left to see
    capsys.readouterr()
    kept = str(checkpoints_path(exported))
    assert run_cli("audit", "verify", "--data-dir", str(hub_dir), "--checkpoints", kept) == 3
    out = capsys.readouterr().out
    assert out.startswith("TAMPERED: first bad entry seq=8: ") and "checkpoint seq=10" in out


def test_export_can_sign_a_checkpoint_of_the_tail_first(engine, log, hub_dir, capsys):
    append_n(engine, log, 3)
    out = hub_dir / "audit.jsonl"
    argv = ("audit", "export", "--data-dir", str(hub_dir), "--out", str(out), "--checkpoint")
    assert run_cli(*argv) == 0
    assert [c.seq for c in read_checkpoints(checkpoints_path(out))] == [3]


def test_export_round_trips_through_the_library(engine, log, hub_dir):
    append_n(engine, log, 4)
    checkpoint(engine, log)
    out = hub_dir / "lib.jsonl"
    with session_scope(engine) as session:
        assert export_log(session, log, out) == (4, 1)
        stored = list(log.entries(session))
    assert list(read_entries(out)) == stored


def test_verify_of_an_export_needs_the_pinned_public_key(tmp_path, capsys):
    assert run_cli("audit", "verify", "--export", str(tmp_path / "a.jsonl")) == 2
    assert "--export needs --public-key" in capsys.readouterr().err


def test_verify_refuses_missing_files_and_never_creates_a_database(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("APPLIANCE_DATABASE_URL", raising=False)
    init_keypair(keys_dir(tmp_path))
    assert run_cli("audit", "verify", "--data-dir", str(tmp_path)) == 2
    assert "no hub database" in capsys.readouterr().err
    assert not (tmp_path / "hub.db").exists()
    export = tmp_path / "audit.jsonl"
    export.write_text("")
    public = str(keys_dir(tmp_path) / "signing.pub")
    assert run_cli("audit", "verify", "--export", str(export), "--public-key", public) == 2
    assert "no audit checkpoints file" in capsys.readouterr().err
    checkpoints_path(export).write_text("")
    assert run_cli("audit", "verify", "--export", str(export), "--public-key", public) == 0
    assert capsys.readouterr().out.strip() == "OK: 0 entries, 0 checkpoints"
