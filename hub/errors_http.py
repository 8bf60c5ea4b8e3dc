"""Translate domain errors into HTTP responses, once, for every hub handler.

Refused access (401 and 403) is also written to the audit log here, in a
transaction of its own, since the request's own work was not done. Residency
refusals are audited at their choke point already.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response

from appliance.errors import (
    ApplianceError,
    AuthenticationError,
    PermissionDeniedError,
    ResidencyRefusedError,
)
from appliance.http_status import status_for
from hub.db import session_scope

log = logging.getLogger(__name__)


def _audit_refusal(request: Request[Any, Any, Any], exc: ApplianceError) -> None:
    services = request.app.state.get("services")
    if services is None:
        return
    user = request.scope.get("user")
    actor = getattr(user, "actor", None) or "anonymous"
    try:
        with session_scope(services.engine) as session:
            services.audit.append(
                session,
                actor=actor,
                action="access.refused",
                target=f"{request.method} {request.url.path}",
                outcome="refused",
                source=request.client.host if request.client else None,
                detail={"status": status_for(exc), "reason": exc.message[:500]},
            )
    except Exception:  # the refusal still goes out; a failing audit write is logged loudly
        log.exception("could not audit a refused request")


def appliance_error_handler(
    request: Request[Any, Any, Any], exc: ApplianceError
) -> Response[dict[str, object]]:
    status = status_for(exc)
    if isinstance(exc, AuthenticationError | PermissionDeniedError) and not isinstance(
        exc, ResidencyRefusedError
    ):
        _audit_refusal(request, exc)
    body: dict[str, object] = {
        "status_code": status,
        "error": type(exc).__name__,
        "detail": exc.message,
    }
    if isinstance(exc, ResidencyRefusedError):
        body["rule"] = exc.rule
    if exc.hint:
        body["hint"] = exc.hint
    headers = {"WWW-Authenticate": 'Bearer realm="appliance"'} if status == 401 else None
    return Response(body, status_code=status, headers=headers)
