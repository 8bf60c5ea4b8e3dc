"""UTC time, in one place, so every record and manifest agrees on the format."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """Databases without time zones (SQLite) hand back naive UTC datetimes: mark them."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def iso_utc(moment: datetime) -> str:
    """``2026-11-22T10:00:00.123456Z``; naive datetimes are taken to be UTC already."""
    return as_utc(moment).astimezone(UTC).isoformat().replace("+00:00", "Z")
