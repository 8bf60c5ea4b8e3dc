"""The audit log on a real database (SQLite and PostgreSQL): same-transaction appends,
tampering by hand in SQL, checkpoints and concurrent writers."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from itertools import pairwise
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

import hub.audit.records  # noqa: F401  (registers the audit tables before create_schema)
from appliance.errors import InvalidInputError
from appliance.security.keys import KeyPair
from hub.audit import (
    GENESIS_HASH,
    AuditLog,
    AuditTamperedError,
    VerifyReport,
    run_checkpoint,
    start_checkpoint_scheduler,
)
from hub.audit.scheduler import JOB_ID
from hub.db import session_scope
from hub.registry.records import ModelRecord


@pytest.fixture(scope="module")
def key() -> KeyPair:
    return KeyPair(Ed25519PrivateKey.generate())


@pytest.fixture
def log(key: KeyPair) -> AuditLog:
    return AuditLog(key)


def append_n(engine: Any, log: AuditLog, n: int, *, actor: str = "user:alice") -> None:
    for i in range(n):
        with session_scope(engine) as session:
            log.append(
                session,
                actor=actor,
                action="model.stage_change",
                target=f"model:churn@{i + 1}",
                outcome="ok",
                source="192.0.2.10",
                detail={"from": "candidate", "to": "staging", "i": i},
            )


def verify(engine: Any, log: AuditLog, key: KeyPair, **kwargs: Any) -> VerifyReport:
    with session_scope(engine) as session:
        return log.verify(session, key.public, **kwargs)


def sql(engine: Any, statement: str, **params: Any) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def test_appends_build_one_valid_chain(engine, log, key):
    with session_scope(engine) as session:
        first = log.append(session, actor="system", action="hub.start", target="hub", outcome="ok")
        second = log.append(
            session,
            actor="agent:edge-1",
            action="residency.decision",
            target="model:churn@2",
            outcome="refused",
            source="10.1.2.3",
            detail={"rule": "ae-dxb-only", "zones": ["ae-dxb"]},
        )
    append_n(engine, log, 3)
    assert (first.seq, first.prev_hash, first.detail, first.source) == (1, GENESIS_HASH, {}, None)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    with session_scope(engine) as session:
        stored = log.list(session)
    assert [e.seq for e in stored] == [1, 2, 3, 4, 5]
    assert stored[:2] == [first, second]  # what was returned is what reads back, to the µs
    assert all(b.prev_hash == a.hash for a, b in pairwise(stored))
    assert all(e.at.utcoffset() == timedelta(0) for e in stored)
    assert verify(engine, log, key).summary() == "OK: 5 entries, 0 checkpoints"


def test_an_append_in_a_rolled_back_transaction_leaves_no_trace(engine, log, key):
    append_n(engine, log, 2)
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        session.add(ModelRecord(name="never-kept"))
        log.append(
            session,
            actor="user:bob",
            action="model.create",
            target="model:never-kept",
            outcome="ok",
        )
        raise RuntimeError("the change failed after it was audited")
    with session_scope(engine) as session:
        assert [e.seq for e in log.list(session)] == [1, 2]
        assert session.connection().execute(text("select count(*) from models")).scalar() == 0
    append_n(engine, log, 1)  # the head rolled back too: the next entry is seq 3
    with session_scope(engine) as session:
        assert [e.seq for e in log.list(session)] == [1, 2, 3]
    assert verify(engine, log, key).ok


def test_a_committed_change_and_its_entry_land_together(engine, log):
    with session_scope(engine) as session:
        session.add(ModelRecord(name="kept"))
        log.append(
            session, actor="user:bob", action="model.create", target="model:kept", outcome="ok"
        )
    with session_scope(engine) as session:
        assert [e.target for e in log.list(session)] == ["model:kept"]
        assert session.connection().execute(text("select count(*) from models")).scalar() == 1


def test_an_entry_edited_in_sql_is_named(engine, log, key):
    append_n(engine, log, 6)
    sql(engine, "UPDATE audit_entries SET actor = 'user:mallory' WHERE seq = 3")
    report = verify(engine, log, key)
    assert not report.ok and report.first_bad_seq == 3
    assert report.summary().startswith("TAMPERED: first bad entry seq=3: ")


def test_an_entry_deleted_in_sql_is_named_by_its_own_seq(engine, log, key):
    append_n(engine, log, 6)
    sql(engine, "DELETE FROM audit_entries WHERE seq = 3")
    report = verify(engine, log, key)
    assert report.first_bad_seq == 3 and "entry seq=3 is missing" in (report.reason or "")


def test_two_entries_swapped_in_sql_are_named(engine, log, key):
    append_n(engine, log, 6)
    columns = [
        "at",
        "actor",
        "action",
        "target",
        "outcome",
        "source",
        "detail",
        "prev_hash",
        "hash",
    ]
    with engine.connect() as conn:
        rows = {
            r.seq: r._mapping
            for r in conn.execute(text("SELECT * FROM audit_entries WHERE seq IN (3, 5)"))
        }
    assignments = ", ".join(f"{c} = :{c}" for c in columns)
    sql(engine, "UPDATE audit_entries SET prev_hash = 'moving' WHERE seq = 3")
    for target, source in ((5, 3), (3, 5)):
        values = {c: rows[source][c] for c in columns}
        if isinstance(values["detail"], dict):
            values["detail"] = json.dumps(values["detail"])  # psycopg decodes json, sqlite not
        sql(
            engine, f"UPDATE audit_entries SET {assignments} WHERE seq = :seq", seq=target, **values
        )
    report = verify(engine, log, key)
    assert report.first_bad_seq == 3 and "was edited" in (report.reason or "")


def test_truncation_is_caught_against_a_kept_checkpoint(engine, log, key):
    append_n(engine, log, 10)
    with session_scope(engine) as session:
        checkpoint = log.checkpoint(session)
        kept = log.checkpoints(session)  # the auditor's copy from an earlier export
    assert checkpoint is not None and checkpoint.seq == 10 and kept == [checkpoint]
    sql(engine, "DELETE FROM audit_entries WHERE seq > 7")
    report = verify(engine, log, key)
    assert report.first_bad_seq == 8 and "checkpoint seq=10" in (report.reason or "")
    sql(engine, "DELETE FROM audit_checkpoints")  # cover the tracks in the database too…
    assert verify(engine, log, key).ok
    report = verify(engine, log, key, extra_checkpoints=kept)  # …but not in the auditor's copy
    assert not report.ok and report.first_bad_seq == 8
    assert "checkpoint seq=10" in (report.reason or "")


def test_checkpoints_are_signed_only_when_there_is_something_new(engine, log, key):
    with session_scope(engine) as session:
        assert log.checkpoint(session) is None
    append_n(engine, log, 3)
    with session_scope(engine) as session:
        first = log.checkpoint(session)
    with session_scope(engine) as session:
        assert log.checkpoint(session) is None
    append_n(engine, log, 2)
    with session_scope(engine) as session:
        second = log.checkpoint(session)
        entries = log.list(session)
    assert first is not None and second is not None
    assert (first.seq, first.head_hash, first.key_id) == (3, entries[2].hash, key.key_id)
    assert (second.seq, second.head_hash) == (5, entries[4].hash)
    assert verify(engine, log, key).summary() == "OK: 5 entries, 2 checkpoints"


def test_a_checkpoint_is_not_signed_over_a_broken_chain(engine, log, key):
    append_n(engine, log, 3)
    with session_scope(engine) as session:
        log.checkpoint(session)
    append_n(engine, log, 3)
    sql(engine, "UPDATE audit_entries SET outcome = 'allowed' WHERE seq = 5")
    with pytest.raises(AuditTamperedError) as caught, session_scope(engine) as session:
        log.checkpoint(session)
    assert caught.value.first_bad_seq == 5
    assert run_checkpoint(engine, log) is None  # the scheduled job logs it and signs nothing
    with session_scope(engine) as session:
        assert [c.seq for c in log.checkpoints(session)] == [3]


def test_a_checkpoint_forged_into_the_database_is_refused(engine, log, key):
    append_n(engine, log, 4)
    with session_scope(engine) as session:
        head = log.list(session)[-1]
    sql(
        engine,
        "INSERT INTO audit_checkpoints (seq, head_hash, at, key_id, signature) "
        "VALUES (4, :h, :at, :kid, :sig)",
        h=head.hash,
        at=head.at,
        kid=key.key_id,
        sig="00" * 64,
    )
    report = verify(engine, log, key)
    assert not report.ok and report.first_bad_seq is None
    assert "checkpoint seq=4" in (report.reason or "")
    append_n(engine, log, 1)
    with pytest.raises(AuditTamperedError, match="not the hub's"), session_scope(engine) as s:
        log.checkpoint(s)


def test_list_pages_by_seq_and_filters(engine, log):
    append_n(engine, log, 5, actor="user:alice")
    append_n(engine, log, 3, actor="user:bob")
    with session_scope(engine) as session:
        page1 = log.list(session, limit=3)
        page2 = log.list(session, after_seq=page1[-1].seq, limit=3)
        bobs = log.list(session, actor="user:bob")
        none = log.list(session, action="auth.sign_in")
        with pytest.raises(InvalidInputError):
            log.list(session, limit=0)
    assert [e.seq for e in page1] == [1, 2, 3] and [e.seq for e in page2] == [4, 5, 6]
    assert [e.seq for e in bobs] == [6, 7, 8] and none == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"outcome": "maybe"},
        {"actor": ""},
        {"action": "x" * 65},
        {"detail": {"when": object()}},
        {"detail": {"ratio": float("nan")}},
    ],
)
def test_bad_appends_are_refused_before_touching_the_chain(engine, log, kwargs):
    values = {"actor": "system", "action": "hub.start", "target": "hub", "outcome": "ok"}
    with pytest.raises(InvalidInputError), session_scope(engine) as session:
        log.append(session, **{**values, **kwargs})


def test_detail_is_stored_as_it_was_hashed(engine, log, key):
    with session_scope(engine) as session:
        entry = log.append(
            session,
            actor="system",
            action="x.y",
            target="t",
            outcome="error",
            detail={"tuple": (1, 2), "text": "دبي", "f": 0.1},
        )
    assert entry.detail == {"tuple": [1, 2], "text": "دبي", "f": 0.1}
    assert verify(engine, log, key).ok


def test_concurrent_appends_never_fork_the_chain(engine, log, key):
    threads, per_thread = 4, 25
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def writer(n: int) -> None:
        try:
            start.wait()
            append_n(engine, log, per_thread, actor=f"agent:edge-{n}")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not errors, errors
    with session_scope(engine) as session:
        entries = list(log.entries(session))
    assert [e.seq for e in entries] == list(range(1, threads * per_thread + 1))
    for n in range(threads):
        assert sum(e.actor == f"agent:edge-{n}" for e in entries) == per_thread
    assert verify(engine, log, key).summary() == "OK: 100 entries, 0 checkpoints"


def test_the_scheduler_signs_checkpoints_in_the_background(engine, log, key):
    append_n(engine, log, 2)
    scheduler = start_checkpoint_scheduler(engine, log, minutes=0.005)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with session_scope(engine) as session:
                if log.checkpoints(session):
                    break
            time.sleep(0.05)
    finally:
        scheduler.shutdown(wait=True)
    assert verify(engine, log, key).summary() == "OK: 2 entries, 1 checkpoints"


def test_the_scheduler_runs_every_five_minutes_by_default(engine, log):
    scheduler = start_checkpoint_scheduler(engine, log)
    try:
        job = scheduler.get_job(JOB_ID)
        assert job.trigger.interval == timedelta(minutes=5)
        assert job.max_instances == 1 and job.coalesce
    finally:
        scheduler.shutdown(wait=False)
