"""Paging, written once: the query parameters every list endpoint of the hub takes, and
the keyset query that answers them (the page after the last key a client saw)."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from litestar.params import Parameter
from sqlalchemy.sql import Select

from appliance.ids import INT64_MAX

Limit = Annotated[int, Parameter(ge=1, le=500, default=100)]
"""Page size of a list: 1 to 500, 100 by default; the next page starts ``after`` the last."""

After = Annotated[int, Parameter(ge=0, le=INT64_MAX, default=0)]
"""The id (or sequence number) a page starts after: a record id, so within int64 (400
beyond; a larger number reached the database and came back as a 500)."""
RecordId = Annotated[int | None, Parameter(ge=0, le=INT64_MAX)]
"""An optional record id in a query, e.g. ``agent_id``: within int64."""

Q = TypeVar("Q", bound=Select[Any])


def page_after(query: Q, key: Any, after: int | str, limit: int) -> Q:
    """``query``'s page of ``limit`` rows whose ``key`` (a unique, ordered column: an id, a
    sequence number, a name) comes after ``after``, in ``key`` order."""
    return query.where(key > after).order_by(key).limit(limit)
