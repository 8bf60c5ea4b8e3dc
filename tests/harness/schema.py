"""The hub's tables as release 0.1.0 made them (with ``create_all``, before migrations):
today's models less the tables the migrations after the baseline add."""

from __future__ import annotations

from sqlalchemy import Table
from sqlmodel import SQLModel

import hub.tables  # noqa: F401  (every table on the metadata)

AFTER_BASELINE = frozenset({"agent_releases", "agent_upgrades"})
"""Tables added by migrations after 0001 (0002: agent releases, 0003: agent upgrades)."""


def baseline_tables() -> list[Table]:
    return [t for t in SQLModel.metadata.sorted_tables if t.name not in AFTER_BASELINE]
