"""Column helpers the domains' tables share."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, DateTime
from sqlmodel import Field

from appliance.clock import utcnow


def utc_column() -> Any:
    """A timestamp with its time zone, set to now when the row is made."""
    return Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
