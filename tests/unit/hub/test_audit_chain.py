"""Pure verification of the audit chain: every kind of tampering is named, no database needed."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import hub.audit
from appliance.security.keys import KeyPair
from appliance.security.signing import canonical_json
from hub.audit import GENESIS_HASH, AuditEntry, Checkpoint, verify_chain
from hub.audit.chain import sign_checkpoint
from hub.audit.schemas import entry_document, entry_hash, make_entry

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def key() -> KeyPair:
    return KeyPair(Ed25519PrivateKey.generate())


def build_chain(n: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    prev = GENESIS_HASH
    for seq in range(1, n + 1):
        entry = make_entry(
            seq=seq,
            at=T0 + timedelta(seconds=seq),
            actor=f"user:u{seq % 3}",
            action="model.stage_change",
            target=f"model:churn@{seq}",
            outcome="ok",
            source="10.0.0.7" if seq % 2 else None,
            detail={"from": "candidate", "to": "staging", "n": seq},
            prev_hash=prev,
        )
        entries.append(entry)
        prev = entry.hash
    return entries


def checkpoint_at(entries: list[AuditEntry], seq: int, key: KeyPair) -> Checkpoint:
    return sign_checkpoint(
        seq=seq, head_hash=entries[seq - 1].hash, at=T0 + timedelta(hours=1), key=key
    )


def test_public_api_is_exactly_what_is_listed():
    assert set(hub.audit.__all__) == {
        "GENESIS_HASH",
        "OUTCOMES",
        "AuditEntry",
        "AuditError",
        "AuditFormatError",
        "AuditLog",
        "AuditTamperedError",
        "Checkpoint",
        "Outcome",
        "VerifyReport",
        "checkpoints_path",
        "export_log",
        "read_checkpoints",
        "read_entries",
        "run_checkpoint",
        "start_checkpoint_scheduler",
        "verify_chain",
        "write_export",
    }
    assert all(hasattr(hub.audit, name) for name in hub.audit.__all__)


def test_an_intact_chain_with_checkpoints_verifies(key):
    entries = build_chain(12)
    report = verify_chain(
        entries, [checkpoint_at(entries, 5, key), checkpoint_at(entries, 12, key)], key.public
    )
    assert report.ok and report.first_bad_seq is None
    assert (report.entries_checked, report.checkpoints_checked) == (12, 2)
    assert report.summary() == "OK: 12 entries, 2 checkpoints"


def test_an_empty_log_verifies():
    key = KeyPair(Ed25519PrivateKey.generate())
    assert verify_chain([], [], key.public).summary() == "OK: 0 entries, 0 checkpoints"


def test_the_hash_is_sha256_of_the_canonical_json_without_hash_as_an_auditor_computes_it():
    entry = build_chain(1)[0]
    document = json.loads(canonical_json(entry_document(entry)))
    claimed = document.pop("hash")
    assert document["at"] == "2026-03-01T09:00:01.000000Z"
    assert claimed == hashlib.sha256(canonical_json(document)).hexdigest() == entry_hash(entry)
    assert entry.prev_hash == GENESIS_HASH == "0" * 64


def test_an_edited_entry_is_named(key):
    entries = build_chain(8)
    entries[2] = msgspec.structs.replace(entries[2], actor="user:mallory")
    report = verify_chain(entries, [checkpoint_at(build_chain(8), 8, key)], key.public)
    assert not report.ok and report.first_bad_seq == 3 and report.entries_checked == 2
    assert "was edited" in (report.reason or "")
    assert report.summary().startswith("TAMPERED: first bad entry seq=3: ")


def test_an_edited_detail_or_time_is_named(key):
    entries = build_chain(5)
    entries[3] = msgspec.structs.replace(entries[3], detail={"from": "candidate", "to": "prod"})
    assert verify_chain(entries, [], key.public).first_bad_seq == 4
    entries = build_chain(5)
    entries[1] = msgspec.structs.replace(entries[1], at=entries[1].at + timedelta(microseconds=1))
    assert verify_chain(entries, [], key.public).first_bad_seq == 2


def test_an_entry_rewritten_with_a_fresh_hash_breaks_the_next_link(key):
    entries = build_chain(6)
    forged = msgspec.structs.replace(entries[2], outcome="refused")
    entries[2] = msgspec.structs.replace(forged, hash=entry_hash(forged))
    report = verify_chain(entries, [], key.public)
    assert report.first_bad_seq == 4
    assert "does not link to entry seq=3" in (report.reason or "")


def test_a_chain_rewritten_to_its_end_is_caught_by_the_signed_checkpoint(key):
    original = build_chain(10)
    checkpoints = [checkpoint_at(original, 4, key), checkpoint_at(original, 8, key)]
    rewritten = original[:5]
    for entry in original[5:]:
        forged = msgspec.structs.replace(
            entry, actor="user:mallory", prev_hash=rewritten[-1].hash, hash=""
        )
        rewritten.append(msgspec.structs.replace(forged, hash=entry_hash(forged)))
    assert verify_chain(rewritten, [], key.public).ok  # without checkpoints it cannot be told
    report = verify_chain(rewritten, checkpoints, key.public)
    assert report.first_bad_seq == 8 and report.checkpoints_checked == 1
    assert "checkpoint seq=8" in (report.reason or "")
    assert "after seq=4" in (report.reason or "")


def test_a_deleted_entry_is_named_by_its_own_seq(key):
    entries = build_chain(6)
    del entries[2]
    report = verify_chain(entries, [], key.public)
    assert report.first_bad_seq == 3
    assert "entry seq=3 is missing" in (report.reason or "")
    first = build_chain(3)[1:]
    assert verify_chain(first, [], key.public).first_bad_seq == 1


def test_reordered_entries_are_named_where_the_order_breaks(key):
    entries = build_chain(6)
    entries[2], entries[4] = entries[4], entries[2]
    report = verify_chain(entries, [], key.public)
    assert report.first_bad_seq == 3


def test_a_duplicated_entry_is_named(key):
    entries = build_chain(5)
    entries.insert(3, entries[2])
    report = verify_chain(entries, [], key.public)
    assert report.first_bad_seq == 4
    assert "seq=3 appears where seq=4 belongs" in (report.reason or "")


def test_truncation_below_a_checkpoint_names_the_first_missing_entry_and_the_checkpoint(key):
    entries = build_chain(10)
    checkpoints = [checkpoint_at(entries, 6, key), checkpoint_at(entries, 10, key)]
    report = verify_chain(entries[:7], checkpoints, key.public)
    assert not report.ok and report.first_bad_seq == 8
    assert "checkpoint seq=10" in (report.reason or "")
    assert "truncated" in (report.reason or "")
    assert report.entries_checked == 7 and report.checkpoints_checked == 1
    assert verify_chain([], checkpoints, key.public).first_bad_seq == 1


def test_truncation_after_the_newest_checkpoint_cannot_be_seen(key):
    entries = build_chain(10)
    assert verify_chain(entries[:8], [checkpoint_at(entries, 6, key)], key.public).ok


def test_a_checkpoint_with_a_forged_signature_is_refused(key):
    entries = build_chain(5)
    good = checkpoint_at(entries, 5, key)
    forged = msgspec.structs.replace(good, signature=bytes(64).hex())
    report = verify_chain(entries, [forged], key.public)
    assert not report.ok and report.first_bad_seq is None and report.checkpoints_checked == 0
    assert "checkpoint seq=5" in (report.reason or "")
    assert "does not verify" in (report.reason or "")
    assert report.summary().startswith("TAMPERED: checkpoint seq=5")


def test_an_altered_checkpoint_is_refused_and_cannot_fake_a_truncation(key):
    entries = build_chain(5)
    moved = msgspec.structs.replace(checkpoint_at(entries, 5, key), seq=9)
    report = verify_chain(entries, [moved], key.public)
    assert not report.ok and report.first_bad_seq is None
    assert "does not verify" in (report.reason or "")
    garbled = msgspec.structs.replace(checkpoint_at(entries, 5, key), signature="not hex")
    assert "does not verify" in (verify_chain(entries, [garbled], key.public).reason or "")


def test_a_checkpoint_by_another_key_is_refused(key):
    entries = build_chain(5)
    other = KeyPair(Ed25519PrivateKey.generate())
    report = verify_chain(entries, [checkpoint_at(entries, 5, other)], key.public)
    assert not report.ok and "not the trusted key" in (report.reason or "")


def test_a_chain_fault_is_reported_before_a_refused_checkpoint(key):
    entries = build_chain(5)
    forged = msgspec.structs.replace(checkpoint_at(entries, 2, key), signature=bytes(64).hex())
    entries[3] = msgspec.structs.replace(entries[3], target="model:other@1")
    assert verify_chain(entries, [forged], key.public).first_bad_seq == 4


def test_identical_checkpoints_from_several_exports_count_once(key):
    entries = build_chain(4)
    checkpoint = checkpoint_at(entries, 4, key)
    copy = msgspec.json.decode(msgspec.json.encode(checkpoint), type=Checkpoint)
    assert verify_chain(entries, [checkpoint, copy], key.public).checkpoints_checked == 1


def test_entries_are_verified_as_a_stream():
    key = KeyPair(Ed25519PrivateKey.generate())
    assert verify_chain(iter(build_chain(50)), iter([]), key.public).entries_checked == 50
