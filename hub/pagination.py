"""Query parameters shared by every list endpoint of the hub."""

from __future__ import annotations

from typing import Annotated

from litestar.params import Parameter

Limit = Annotated[int, Parameter(ge=1, le=500, default=100)]
"""Page size of a list: 1 to 500, 100 by default; the next page starts ``after`` the last."""
