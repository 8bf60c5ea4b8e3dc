"""Audit export files: what an auditor carries away and verifies offline.

An export is two JSON-lines files, each line the canonical JSON of one object
(see :mod:`hub.audit.schemas`):

* ``FILE``: the entries, in seq order, one per line;
* ``FILE.checkpoints.jsonl``: the hub's signed checkpoints, in seq order.

Each is written to a temporary file and renamed into place, entries first (a
crash in between leaves old, fewer checkpoints: never a false alarm). Reading
is streamed and every line is bounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final, TypeVar

import msgspec
from sqlmodel import Session

from appliance.errors import ConfigError
from appliance.fsutil import atomic_open
from appliance.security.signing import canonical_json
from hub.audit.errors import AuditFormatError
from hub.audit.schemas import AuditEntry, Checkpoint, checkpoint_document, entry_document
from hub.audit.service import AuditLog

CHECKPOINTS_SUFFIX: Final = ".checkpoints.jsonl"
MAX_LINE_BYTES: Final = 1 << 20
EXPORT_MODE: Final = 0o600
"""Entries name people and addresses: readable by the owner only, like keys."""

T = TypeVar("T")

_ENTRY: Final = msgspec.json.Decoder(AuditEntry)
_CHECKPOINT: Final = msgspec.json.Decoder(Checkpoint)


def checkpoints_path(export: Path) -> Path:
    """Where the checkpoints of export ``FILE`` live: ``FILE.checkpoints.jsonl``."""
    return export.with_name(export.name + CHECKPOINTS_SUFFIX)


def write_export(
    out: Path, entries: Iterable[AuditEntry], checkpoints: Iterable[Checkpoint]
) -> tuple[int, int]:
    """Write ``out`` and ``out.checkpoints.jsonl``; return how many entries and checkpoints."""
    n_entries = n_checkpoints = 0
    with atomic_open(out, mode=EXPORT_MODE) as handle:
        for entry in entries:
            handle.write(canonical_json(entry_document(entry)) + b"\n")
            n_entries += 1
    with atomic_open(checkpoints_path(out), mode=EXPORT_MODE) as handle:
        for checkpoint in checkpoints:
            handle.write(canonical_json(checkpoint_document(checkpoint)) + b"\n")
            n_checkpoints += 1
    return n_entries, n_checkpoints


def export_log(session: Session, audit_log: AuditLog, out: Path) -> tuple[int, int]:
    """Export the stored log; checkpoints are read first so the entries cover all of them."""
    checkpoints = audit_log.checkpoints(session)
    return write_export(out, audit_log.entries(session), checkpoints)


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise ConfigError(f"no {what} file at {path}")


def _lines(path: Path, decoder: msgspec.json.Decoder[T], what: str) -> Iterator[T]:
    with path.open("rb") as handle:
        number = 0
        while line := handle.readline(MAX_LINE_BYTES + 1):
            number += 1
            if len(line) > MAX_LINE_BYTES:
                raise AuditFormatError(
                    f"{path.name} line {number} is longer than {MAX_LINE_BYTES} bytes"
                )
            try:
                yield decoder.decode(line)
            except msgspec.DecodeError as exc:  # ValidationError is a DecodeError too
                raise AuditFormatError(
                    f"{path.name} line {number} is not a valid {what}: {exc}"
                ) from exc


def read_entries(export: Path) -> Iterator[AuditEntry]:
    """Stream the entries of an export file (raises :class:`AuditFormatError` on a bad line)."""
    _require_file(export, "audit export")
    return _lines(export, _ENTRY, "audit entry")


def read_checkpoints(path: Path) -> list[Checkpoint]:
    """All checkpoints of a checkpoints file (``FILE.checkpoints.jsonl``)."""
    _require_file(path, "audit checkpoints")
    return list(_lines(path, _CHECKPOINT, "audit checkpoint"))
