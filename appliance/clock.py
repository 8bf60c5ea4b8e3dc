"""UTC time, in one place, so every record and manifest agrees on the format."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """In UTC; naive datetimes (SQLite hands those back) are taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def iso_utc(moment: datetime) -> str:
    """``2026-11-22T10:00:00.123456Z``; naive datetimes are taken to be UTC already."""
    return as_utc(moment).isoformat().replace("+00:00", "Z")


def parse_utc(text: str) -> datetime:
    """Read :func:`iso_utc`'s format back (``Z`` or an offset); raises ``ValueError``."""
    return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
