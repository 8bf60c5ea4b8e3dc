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


def audit_refusal(
    services: Any, actor: str, target: str, source: str | None, exc: ApplianceError
) -> None:
    """Write ``access.refused`` for a 401 or 403, in a transaction of its own."""
    try:
        with session_scope(services.engine) as session:
            services.audit.append(
                session,
                actor=actor,
                action="access.refused",
                target=target,
                outcome="refused",
                source=source,
                detail={"status": status_for(exc), "reason": exc.message[:500]},
            )
    except Exception:  # the refusal still goes out; a failing audit write is logged loudly
        log.exception("could not audit a refused request")


def audited(exc: ApplianceError) -> bool:
    """Refused access is audited here; residency refusals are, at their choke point."""
    return isinstance(exc, AuthenticationError | PermissionDeniedError) and not isinstance(
        exc, ResidencyRefusedError
    )


def error_body(exc: ApplianceError) -> dict[str, object]:
    """The JSON every hub error answers with: status, error type, detail, rule, hint."""
    body: dict[str, object] = {
        "status_code": status_for(exc),
        "error": type(exc).__name__,
        "detail": exc.message,
    }
    if isinstance(exc, ResidencyRefusedError):
        body["rule"] = exc.rule
    if exc.hint:
        body["hint"] = exc.hint
    return body


WWW_AUTHENTICATE = 'Bearer realm="appliance"'


def appliance_error_handler(
    request: Request[Any, Any, Any], exc: ApplianceError
) -> Response[dict[str, object]]:
    status = status_for(exc)
    services = request.app.state.get("services")
    if audited(exc) and services is not None:
        user = request.scope.get("user")
        audit_refusal(
            services,
            getattr(user, "actor", None) or "anonymous",
            f"{request.method} {request.url.path}",
            request.client.host if request.client else None,
            exc,
        )
    headers = {"WWW-Authenticate": WWW_AUTHENTICATE} if status == 401 else None
    return Response(error_body(exc), status_code=status, headers=headers)
