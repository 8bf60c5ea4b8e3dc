"""Query parameters shared by every list endpoint of the hub."""

from __future__ import annotations

from typing import Annotated

from litestar.params import Parameter

from appliance.ids import INT64_MAX

Limit = Annotated[int, Parameter(ge=1, le=500, default=100)]
"""Page size of a list: 1 to 500, 100 by default; the next page starts ``after`` the last."""

After = Annotated[int, Parameter(ge=0, le=INT64_MAX, default=0)]
"""The id (or sequence number) a page starts after: a record id, so within int64 (400
beyond; a larger number reached the database and came back as a 500)."""
RecordId = Annotated[int | None, Parameter(ge=0, le=INT64_MAX)]
"""An optional record id in a query, e.g. ``agent_id``: within int64."""
