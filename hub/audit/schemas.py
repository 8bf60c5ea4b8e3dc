"""What an audit entry and a checkpoint are, and exactly which bytes are hashed and signed.

An entry's hash is the hex SHA-256 of the canonical JSON (sorted keys, no
insignificant white space, UTF-8; :func:`appliance.security.signing.canonical_json`) of
the object of all its fields but ``hash``::

    {"action", "actor", "at", "detail", "outcome", "prev_hash", "seq", "source", "target"}

``at`` is written as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC, always six
fraction digits), ``source`` may be ``null`` and ``detail`` is a JSON object.
The first entry's ``prev_hash`` is :data:`GENESIS_HASH`. An export line is the
canonical JSON of the entry's full object (:func:`entry_document`), so an
auditor can recompute a hash with any JSON tool: drop ``hash``, re-encode
canonically, SHA-256.

A checkpoint signs, with the hub's Ed25519 key, the canonical JSON of
``{"_type": "audit-checkpoint", "seq", "head_hash", "at"}``; the ``_type`` tag
keeps a checkpoint signature from ever being mistaken for a bundle manifest's,
which the same key signs.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Final, Literal, get_args

import msgspec

from appliance.clock import as_utc
from appliance.security.signing import canonical_json

Outcome = Literal["ok", "refused", "allowed", "error"]
OUTCOMES: Final[tuple[str, ...]] = get_args(Outcome)

GENESIS_HASH: Final = "0" * 64
"""``prev_hash`` of entry 1: there is nothing before it."""

CHECKPOINT_TYPE: Final = "audit-checkpoint"


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One recorded event; ``hash`` covers every other field (see the module docstring)."""

    seq: int
    """Position in the chain: 1, 2, 3, … with no gaps."""
    at: datetime
    """When it was recorded (UTC)."""
    actor: str
    """Who acted: ``user:alice``, ``agent:edge-1``, ``system``."""
    action: str
    """What was done: ``auth.sign_in``, ``model.stage_change``, ``residency.decision``."""
    target: str
    """What it was done to, e.g. ``model:churn@3``."""
    outcome: str
    """``ok``, ``refused``, ``allowed`` or ``error`` (a str here so a tampered export still
    parses and is reported as tampered rather than as malformed)."""
    source: str | None
    """Client address, or ``None`` for the hub's own actions."""
    detail: dict[str, Any]
    """Free-form JSON object."""
    prev_hash: str
    hash: str


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The hub's signed statement that the chain's entry ``seq`` had hash ``head_hash``."""

    seq: int
    head_hash: str
    at: datetime
    key_id: str
    """Hex SHA-256 of the raw public key that signed (:func:`appliance.security.keys.key_id`)."""
    signature: str
    """Hex Ed25519 signature over :func:`checkpoint_payload`."""


def at_text(moment: datetime) -> str:
    """The one spelling of a time that is hashed and signed: fixed width, UTC, microseconds."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _hashed_fields(
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    source: str | None,
    detail: dict[str, Any],
    prev_hash: str,
) -> dict[str, Any]:
    return {
        "seq": seq,
        "at": at_text(at),
        "actor": actor,
        "action": action,
        "target": target,
        "outcome": outcome,
        "source": source,
        "detail": detail,
        "prev_hash": prev_hash,
    }


def _digest(fields: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(fields)).hexdigest()


def entry_hash(entry: AuditEntry) -> str:
    """Recompute what ``entry.hash`` must be, from every other field."""
    return _digest(
        _hashed_fields(
            seq=entry.seq,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            target=entry.target,
            outcome=entry.outcome,
            source=entry.source,
            detail=entry.detail,
            prev_hash=entry.prev_hash,
        )
    )


def make_entry(
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    source: str | None,
    detail: dict[str, Any],
    prev_hash: str,
) -> AuditEntry:
    """Build the entry that follows ``prev_hash``, with its hash filled in."""
    fields = _hashed_fields(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        target=target,
        outcome=outcome,
        source=source,
        detail=detail,
        prev_hash=prev_hash,
    )
    return AuditEntry(
        seq=seq,
        at=as_utc(at),
        actor=actor,
        action=action,
        target=target,
        outcome=outcome,
        source=source,
        detail=detail,
        prev_hash=prev_hash,
        hash=_digest(fields),
    )


def entry_document(entry: AuditEntry) -> dict[str, Any]:
    """The entry as a JSON object, ``at`` spelled exactly as it was hashed (an export line)."""
    return {
        "seq": entry.seq,
        "at": at_text(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "outcome": entry.outcome,
        "source": entry.source,
        "detail": entry.detail,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def checkpoint_payload(seq: int, head_hash: str, at: datetime) -> bytes:
    """The bytes a checkpoint's signature covers."""
    return canonical_json(
        {"_type": CHECKPOINT_TYPE, "seq": seq, "head_hash": head_hash, "at": at_text(at)}
    )


def checkpoint_document(checkpoint: Checkpoint) -> dict[str, Any]:
    """The checkpoint as a JSON object (a line of the checkpoints export)."""
    return {
        "seq": checkpoint.seq,
        "head_hash": checkpoint.head_hash,
        "at": at_text(checkpoint.at),
        "key_id": checkpoint.key_id,
        "signature": checkpoint.signature,
    }
