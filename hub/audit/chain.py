"""Verifying the audit chain and its signed checkpoints: pure, no database, no network.

Like python-tuf's ``trusted_metadata_set``, this module only judges what it is
handed; :mod:`hub.audit.service` and :mod:`hub.audit.export` fetch it.

What :func:`verify_chain` reports as ``first_bad_seq`` is the smallest seq
whose entry is not as it was recorded:

* **edited** entry K (a field changed, hash left alone): K, its hash no longer
  matches its contents;
* **rewritten** entry K (hash recomputed too): K+1, whose ``prev_hash`` no
  longer links to K; if every later entry was re-hashed as well, the first
  signed checkpoint at or after K, whose hash no longer matches;
* **deleted** entry K: K, the seq that is missing (entry K+1 is where the gap
  is seen, but K is the entry that is gone);
* **reordered** entries (contents swapped between rows, or lines swapped in
  an export): the first position whose entry is not the one that belongs there
  (seq is hashed, so a moved entry never verifies in another place);
* **truncated** chain (the last entries removed): the first missing seq, when
  a signed checkpoint says the chain once reached past the end. Entries after
  the newest checkpoint can be cut without trace: that is what checkpoints
  bound, and why the hub signs one every few minutes.

A checkpoint whose signature does not verify with the trusted key is refused
(the report is not OK, ``first_bad_seq`` is ``None``); a chain fault is
reported before a refused checkpoint, as it says more.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from appliance.clock import as_utc
from appliance.security.keys import KeyPair, key_id
from hub.audit.schemas import (
    GENESIS_HASH,
    AuditEntry,
    Checkpoint,
    at_text,
    checkpoint_payload,
    entry_hash,
)


class VerifyReport(msgspec.Struct, frozen=True, kw_only=True):
    """The verdict on a chain and its checkpoints."""

    ok: bool
    entries_checked: int
    """Entries that verified before the first fault (all of them when ``ok``)."""
    checkpoints_checked: int
    """Checkpoints whose signature verified and whose hash was compared with the chain."""
    first_bad_seq: int | None = None
    """Smallest seq whose entry is altered, missing or out of place (see the module docs)."""
    reason: str | None = None

    def summary(self) -> str:
        """One line for people: ``OK: …`` or ``TAMPERED: …``."""
        if self.ok:
            return f"OK: {self.entries_checked} entries, {self.checkpoints_checked} checkpoints"
        if self.first_bad_seq is not None:
            return f"TAMPERED: first bad entry seq={self.first_bad_seq}: {self.reason}"
        return f"TAMPERED: {self.reason}"


class Fault(msgspec.Struct, frozen=True):
    seq: int
    reason: str


class ChainWalk:
    """Follows a chain entry by entry from a known (seq, hash): the genesis or a checkpoint."""

    def __init__(self, seq: int = 0, head_hash: str = GENESIS_HASH) -> None:
        self.seq = seq
        self.head_hash = head_hash

    def step(self, entry: AuditEntry) -> Fault | None:
        """Check ``entry`` as the next one; advance past it if it verifies."""
        expected = self.seq + 1
        if entry.seq > expected:
            return Fault(
                expected,
                f"entry seq={expected} is missing: seq={entry.seq} comes right after "
                f"seq={self.seq} (deleted or moved)",
            )
        if entry.seq < expected:
            return Fault(
                expected,
                f"seq={entry.seq} appears where seq={expected} belongs "
                "(entries duplicated or out of order)",
            )
        if entry_hash(entry) != entry.hash:
            return Fault(entry.seq, "its contents do not match its hash (the entry was edited)")
        if entry.prev_hash != self.head_hash:
            previous = f"entry seq={self.seq}" if self.seq else "the genesis"
            return Fault(
                entry.seq,
                f"its prev_hash does not link to {previous} "
                f"(entry seq={self.seq} or this one was rewritten)",
            )
        self.seq, self.head_hash = entry.seq, entry.hash
        return None


def sign_checkpoint(*, seq: int, head_hash: str, at: datetime, key: KeyPair) -> Checkpoint:
    signature = key.private.sign(checkpoint_payload(seq, head_hash, at)).hex()
    return Checkpoint(
        seq=seq, head_hash=head_hash, at=as_utc(at), key_id=key.key_id, signature=signature
    )


def checkpoint_refusal(checkpoint: Checkpoint, public_key: Ed25519PublicKey) -> str | None:
    """Why ``checkpoint`` is not trusted under ``public_key``, or ``None`` if it is."""
    trusted = key_id(public_key)
    where = f"checkpoint seq={checkpoint.seq} (at {at_text(checkpoint.at)})"
    if checkpoint.key_id != trusted:
        return (
            f"{where} is signed by key {checkpoint.key_id[:16]}, "
            f"not the trusted key {trusted[:16]}: refused"
        )
    try:
        public_key.verify(
            bytes.fromhex(checkpoint.signature),
            checkpoint_payload(checkpoint.seq, checkpoint.head_hash, checkpoint.at),
        )
    except (InvalidSignature, ValueError):
        return f"{where} has a signature that does not verify with key {trusted[:16]}: refused"
    return None


def verify_chain(
    entries: Iterable[AuditEntry],
    checkpoints: Iterable[Checkpoint],
    public_key: Ed25519PublicKey,
) -> VerifyReport:
    """Check ``entries`` (in order, streamed) against each other and the signed ``checkpoints``.

    ``checkpoints`` may mix the hub's own with ones an auditor kept from
    earlier exports; identical copies count once.
    """
    signed: dict[int, list[Checkpoint]] = {}
    refusals: list[tuple[int, str]] = []
    for checkpoint in {(c.seq, c.head_hash, c.signature): c for c in checkpoints}.values():
        refusal = checkpoint_refusal(checkpoint, public_key)
        if refusal is None:
            signed.setdefault(checkpoint.seq, []).append(checkpoint)
        else:
            refusals.append((checkpoint.seq, refusal))

    walk = ChainWalk()
    compared = 0
    matched_seq = 0

    def failed(fault: Fault) -> VerifyReport:
        return VerifyReport(
            ok=False,
            entries_checked=walk.seq,
            checkpoints_checked=compared,
            first_bad_seq=fault.seq,
            reason=fault.reason,
        )

    for entry in entries:
        fault = walk.step(entry)
        if fault is not None:
            return failed(fault)
        for checkpoint in signed.get(entry.seq, ()):
            if checkpoint.head_hash != entry.hash:
                return failed(
                    Fault(
                        entry.seq,
                        f"its hash differs from the one signed in checkpoint seq={entry.seq} "
                        f"at {at_text(checkpoint.at)}: entries after seq={matched_seq} "
                        "were rewritten",
                    )
                )
            compared += 1
            matched_seq = entry.seq

    beyond = [seq for seq in signed if seq > walk.seq]
    if beyond:
        last = max(beyond)
        at = at_text(signed[last][0].at)
        return failed(
            Fault(
                walk.seq + 1,
                f"entry seq={walk.seq + 1} is missing: the chain ends at seq={walk.seq} but "
                f"checkpoint seq={last} signed at {at} covers entries up to seq={last} "
                "(truncated)",
            )
        )
    if refusals:
        return VerifyReport(
            ok=False,
            entries_checked=walk.seq,
            checkpoints_checked=compared,
            reason=min(refusals)[1],
        )
    return VerifyReport(ok=True, entries_checked=walk.seq, checkpoints_checked=compared)
