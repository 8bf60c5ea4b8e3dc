"""Rings: the shares of an agent group that a change reaches one after another (model
rollouts, agent upgrades). Ring ``k`` covers the first ``ceil(rings[k] * n)`` of the
group's ``n`` enrolled, unrevoked agents, by id, so it only ever grows."""

from __future__ import annotations

import itertools
import math
from typing import Any

from sqlmodel import Session, col, select

from appliance.clock import iso_utc, utcnow
from appliance.errors import InvalidInputError
from hub.fleet.records import AgentRecord


def group_members(session: Session, zone: str, group: str) -> list[tuple[int, str]]:
    """(id, name) of the group's enrolled, unrevoked agents, by id."""
    return [
        (a.id or 0, a.name)
        for a in session.exec(
            select(AgentRecord)
            .where(
                AgentRecord.zone == zone,
                AgentRecord.group == group,
                col(AgentRecord.revoked_at).is_(None),
            )
            .order_by(col(AgentRecord.id))
        )
    ]


def checked_rings(rings: list[float]) -> list[float]:
    """``rings`` if they are increasing shares in (0, 1] ending at 1.0."""
    if (
        not rings
        or rings[-1] != 1.0
        or any(not 0 < r <= 1 for r in rings)
        or any(b <= a for a, b in itertools.pairwise(rings))
    ):
        raise InvalidInputError("rings: increasing shares in (0, 1], the last one 1.0")
    return rings


def first_share(members: list[tuple[int, str]], share: float) -> list[tuple[int, str]]:
    """The members a ring of ``share`` covers."""
    return members[: math.ceil(share * len(members))]


def with_step(
    steps: list[dict[str, Any]], by: str, action: str, note: str, **more: Any
) -> list[dict[str, Any]]:
    """``steps`` and one more, stamped now: a new list, so that the record's JSON column is
    seen as changed."""
    return [*steps, {"at": iso_utc(utcnow()), "by": by, "action": action, "note": note, **more}]
