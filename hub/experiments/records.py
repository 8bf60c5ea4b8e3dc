"""A/B experiments as the hub records them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime
from sqlmodel import Field, SQLModel

from appliance.clock import utcnow


class ExperimentRecord(SQLModel, table=True):
    __tablename__ = "experiments"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=64)
    model: str = Field(max_length=128)
    variants: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    """``[{"name": …, "version": …, "weight": …}]``; the first is the control."""
    zone: str = Field(max_length=64)
    group: str = Field(max_length=64)
    metric: str = Field(max_length=8)
    outcome_min: float | None = None
    outcome_max: float | None = None
    """A ``mean`` experiment's outcome bounds: agents refuse others, the hub too."""
    higher_is_better: bool = True
    min_samples: int
    alpha: float = 0.05
    salt: str = Field(max_length=64)
    status: str = Field(default="running", max_length=16)
    created_by: str = Field(max_length=128)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
