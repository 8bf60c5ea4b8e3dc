"""Translate domain errors into HTTP responses, once, for every hub handler."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response

from appliance.errors import ApplianceError
from appliance.http_status import status_for


def appliance_error_handler(
    _request: Request[Any, Any, Any], exc: ApplianceError
) -> Response[dict[str, object]]:
    status = status_for(exc)
    body: dict[str, object] = {
        "status_code": status,
        "error": type(exc).__name__,
        "detail": exc.message,
    }
    if exc.hint:
        body["hint"] = exc.hint
    return Response(body, status_code=status)
