"""The hub's audit log: append inside the caller's transaction, checkpoint, read, verify.

Every append takes the single-row ``audit_head`` with an ``UPDATE … RETURNING``
as its first audit statement. On PostgreSQL that is a row lock, as ``SELECT …
FOR UPDATE`` would take, so a second append waits until the first commits or
rolls back and then reads the head the first one left; on SQLite the same
statement takes the database's write lock (waiting out the busy timeout
``hub.db`` sets). The primary key on ``seq`` and the unique ``prev_hash`` are
the safety net should anything slip past.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Generator, Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, Row, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlmodel import Session

from appliance.clock import as_utc, utcnow
from appliance.errors import ConfigError, InvalidInputError
from appliance.security.keys import KeyPair
from appliance.security.signing import canonical_json
from hub.audit.chain import (
    ChainWalk,
    VerifyReport,
    checkpoint_refusal,
    sign_checkpoint,
    verify_chain,
)
from hub.audit.errors import AuditError, AuditTamperedError
from hub.audit.records import (
    HEAD_ROW_ID,
    AuditCheckpointRecord,
    AuditEntryRecord,
    AuditHeadRecord,
)
from hub.audit.schemas import (
    GENESIS_HASH,
    OUTCOMES,
    AuditEntry,
    Checkpoint,
    Outcome,
    make_entry,
)
from hub.pagination import page_after

MAX_DETAIL_BYTES: Final = 64 * 1024
"""Largest ``detail`` (as canonical JSON) one entry may carry."""
MAX_PAGE: Final = 1000
"""Largest ``limit`` :meth:`AuditLog.list` serves."""
_MAX_LENGTHS: Final = {"actor": 128, "action": 64, "target": 512, "source": 128}
_STREAM_BATCH: Final = 1000

_ENTRIES = AuditEntryRecord.__table__  # type: ignore[attr-defined]
_CHECKPOINTS = AuditCheckpointRecord.__table__  # type: ignore[attr-defined]
_HEAD = AuditHeadRecord.__table__  # type: ignore[attr-defined]


def _fit(name: str, value: str) -> str:
    """``value`` cut to the column's length, its end marked with an ellipsis."""
    limit = _MAX_LENGTHS[name]
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _check_text(name: str, value: str | None, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"audit {name} must be a non-empty string, not {value!r}")
    if len(value) > _MAX_LENGTHS[name]:
        raise InvalidInputError(f"audit {name} is longer than {_MAX_LENGTHS[name]} characters")


def _normalised_detail(detail: Mapping[str, Any] | None) -> dict[str, Any]:
    """``detail`` as it will read back from the database (and so as it must be hashed)."""
    if detail is None:
        return {}
    try:
        encoded = canonical_json(dict(detail))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"audit detail is not a JSON object: {exc}") from exc
    if len(encoded) > MAX_DETAIL_BYTES:
        raise InvalidInputError(f"audit detail is larger than {MAX_DETAIL_BYTES} bytes")
    normalised: dict[str, Any] = json.loads(encoded)
    return normalised


def _take_head(connection: Connection, *, advance: bool) -> tuple[int, str]:
    """Lock the head row; return (seq, hash) of the newest entry, plus one to seq if ``advance``.

    The head row is created on first use (an upsert that does nothing when a
    concurrent first append made it already).
    """
    seq = _HEAD.c.seq
    take = (
        update(_HEAD)
        .where(_HEAD.c.id == HEAD_ROW_ID)
        .values(seq=seq + 1 if advance else seq)
        .returning(seq, _HEAD.c.hash)
    )
    row = connection.execute(take).first()
    if row is None:
        if not advance:
            return 0, GENESIS_HASH
        _create_head(connection)
        row = connection.execute(take).one()
    return int(row[0]), str(row[1])


def _create_head(connection: Connection) -> None:
    values = {"id": HEAD_ROW_ID, "seq": 0, "hash": GENESIS_HASH}
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(
            postgresql.insert(_HEAD).values(values).on_conflict_do_nothing(index_elements=["id"])
        )
    elif dialect == "sqlite":
        connection.execute(
            sqlite.insert(_HEAD).values(values).on_conflict_do_nothing(index_elements=["id"])
        )
    else:  # other engines: a concurrent first append fails on the key and is retried by its caller
        connection.execute(insert(_HEAD).values(values))


def _entry(row: Row[Any]) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        at=as_utc(row.at),
        actor=row.actor,
        action=row.action,
        target=row.target,
        outcome=row.outcome,
        source=row.source,
        detail=dict(row.detail),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _checkpoint(row: Row[Any]) -> Checkpoint:
    return Checkpoint(
        seq=row.seq,
        head_hash=row.head_hash,
        at=as_utc(row.at),
        key_id=row.key_id,
        signature=row.signature,
    )


class AuditLog:
    """Append-only, hash-chained record of what happened on the hub.

    ``key`` signs checkpoints; a log built without one can append, read and
    verify but not checkpoint.
    """

    def __init__(
        self, key: KeyPair | None = None, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.key = key
        self._clock = clock

    # -- writing -----------------------------------------------------------------

    def append(
        self,
        session: Session,
        *,
        actor: str,
        action: str,
        target: str,
        outcome: Outcome,
        source: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Record an event in ``session``'s transaction; it is kept only if the caller commits.

        Blocks while another transaction holds the head (its append is not
        yet committed or rolled back), and holds the head itself until this
        transaction ends: call it last, just before the commit. Never commits.
        """
        # What a request names (its path, its address) is cut to fit, never refused: a
        # refusal of a 600-character path is audited like any other.
        target = _fit("target", target)
        source = _fit("source", source) if source is not None else None
        _check_text("actor", actor)
        _check_text("action", action)
        _check_text("target", target)
        _check_text("source", source, optional=True)
        if outcome not in OUTCOMES:
            raise InvalidInputError(
                f"audit outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}"
            )
        normalised = _normalised_detail(detail)
        connection = session.connection()
        seq, prev_hash = _take_head(connection, advance=True)
        entry = make_entry(
            seq=seq,
            at=self._clock(),  # taken under the lock, so times never run backwards along seq
            actor=actor,
            action=action,
            target=target,
            outcome=outcome,
            source=source,
            detail=normalised,
            prev_hash=prev_hash,
        )
        values = {name: getattr(entry, name) for name in entry.__struct_fields__}
        try:
            connection.execute(insert(_ENTRIES).values(values))
        except SAIntegrityError as exc:
            raise AuditError(
                f"audit entry seq={seq} would fork the chain: an entry with that seq or "
                "that prev_hash exists already (audit_head is behind audit_entries)",
                hint="run 'appliance audit verify' to see what was changed",
            ) from exc
        connection.execute(update(_HEAD).where(_HEAD.c.id == HEAD_ROW_ID).values(hash=entry.hash))
        return entry

    def checkpoint(self, session: Session) -> Checkpoint | None:
        """Sign (seq, head hash, time) of the newest entry; ``None`` if nothing is new.

        The entries since the previous checkpoint are verified first, so the hub
        never signs over a chain it can see is broken (that raises
        :class:`AuditTamperedError` instead).
        """
        if self.key is None:
            raise ConfigError("this audit log has no signing key to sign checkpoints with")
        connection = session.connection()
        head_seq, head_hash = _take_head(connection, advance=False)
        newest = connection.execute(
            select(_CHECKPOINTS).order_by(_CHECKPOINTS.c.seq.desc()).limit(1)
        ).first()
        walk = ChainWalk()
        if newest is not None:
            previous = _checkpoint(newest)
            refusal = checkpoint_refusal(previous, self.key.public)
            if refusal is not None:
                raise AuditTamperedError(
                    f"the newest audit checkpoint is not the hub's: {refusal}", first_bad_seq=None
                )
            if previous.seq > head_seq:
                raise AuditTamperedError(
                    f"audit head is at seq={head_seq} but checkpoint seq={previous.seq} "
                    "was signed: the log was truncated",
                    first_bad_seq=head_seq + 1,
                )
            walk = ChainWalk(previous.seq, previous.head_hash)
        if head_seq == walk.seq:
            return None
        with closing(self.entries(session, after_seq=walk.seq, up_to=head_seq)) as entries:
            for entry in entries:
                fault = walk.step(entry)
                if fault is not None:
                    raise AuditTamperedError(
                        f"audit entry seq={fault.seq}: {fault.reason}; no checkpoint signed",
                        first_bad_seq=fault.seq,
                    )
        if (walk.seq, walk.head_hash) != (head_seq, head_hash):
            raise AuditTamperedError(
                f"audit head says seq={head_seq} but the verified entries end at seq={walk.seq} "
                "with another hash; no checkpoint signed",
                first_bad_seq=walk.seq + 1,
            )
        checkpoint = sign_checkpoint(
            seq=head_seq, head_hash=head_hash, at=self._clock(), key=self.key
        )
        connection.execute(
            insert(_CHECKPOINTS).values(
                {name: getattr(checkpoint, name) for name in checkpoint.__struct_fields__}
            )
        )
        return checkpoint

    # -- reading -----------------------------------------------------------------

    def list(
        self,
        session: Session,
        *,
        after_seq: int = 0,
        limit: int = 100,
        actor: str | None = None,
        action: str | None = None,
    ) -> builtins.list[AuditEntry]:
        """One page of entries with seq > ``after_seq``, oldest first, optionally filtered.

        The next page starts after the last seq returned.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInputError(f"limit must be between 1 and {MAX_PAGE}, not {limit}")
        query = select(_ENTRIES)
        if actor is not None:
            query = query.where(_ENTRIES.c.actor == actor)
        if action is not None:
            query = query.where(_ENTRIES.c.action == action)
        rows = session.connection().execute(page_after(query, _ENTRIES.c.seq, after_seq, limit))
        return [_entry(row) for row in rows]

    def entries(
        self, session: Session, *, after_seq: int = 0, up_to: int | None = None
    ) -> Generator[AuditEntry, None, None]:
        """Every entry with ``after_seq`` < seq (≤ ``up_to``), in seq order, streamed."""
        query = select(_ENTRIES).where(_ENTRIES.c.seq > after_seq)
        if up_to is not None:
            query = query.where(_ENTRIES.c.seq <= up_to)
        rows = session.connection().execute(
            query.order_by(_ENTRIES.c.seq).execution_options(yield_per=_STREAM_BATCH)
        )
        try:
            for row in rows:
                yield _entry(row)
        finally:  # a verifier that stops at the first fault must not leave a cursor open
            rows.close()

    def checkpoints(self, session: Session) -> builtins.list[Checkpoint]:
        rows = session.connection().execute(select(_CHECKPOINTS).order_by(_CHECKPOINTS.c.seq))
        return [_checkpoint(row) for row in rows]

    def verify(
        self,
        session: Session,
        public_key: Ed25519PublicKey,
        *,
        extra_checkpoints: Iterable[Checkpoint] = (),
    ) -> VerifyReport:
        """Verify the whole stored chain against the stored checkpoints.

        ``extra_checkpoints`` (say, kept from an earlier export) catch what
        removing both entries and their checkpoints from the database would hide.
        Checkpoints are read before entries: entries are never removed, so every
        checkpoint read is covered by the entries read after it, even while
        appends go on.
        """
        checkpoints = [*self.checkpoints(session), *extra_checkpoints]
        with closing(self.entries(session)) as entries:
            return verify_chain(entries, checkpoints, public_key)


@dataclass(frozen=True)
class AuditReader:
    """The log as auditors read it over HTTP, each call in a session of its own."""

    engine: Engine
    log: AuditLog
    public_key: Ed25519PublicKey
    """The hub's signing key, that checkpoints are verified against."""

    def list(
        self,
        *,
        after_seq: int = 0,
        limit: int = 100,
        actor: str | None = None,
        action: str | None = None,
    ) -> builtins.list[AuditEntry]:
        with Session(self.engine) as session:
            return self.log.list(
                session, after_seq=after_seq, limit=limit, actor=actor, action=action
            )

    def verify(self) -> VerifyReport:
        with Session(self.engine) as session:
            return self.log.verify(session, self.public_key)
