"""Authentication middleware and permission guards for the hub's Litestar app.

Every request but the open ones (health, sign-in, refresh, enrolment) must
carry ``Authorization: Bearer <token>``: a user's access token or an agent's
self-signed token. Every handler declares the permission it needs with
:func:`requires`; a test walks the app and fails on any handler without one.
"""

from __future__ import annotations

from typing import Any, Protocol

import anyio
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import Guard

from appliance import logs
from appliance.errors import AuthenticationError, PermissionDeniedError
from hub.auth.principal import Principal
from hub.auth.roles import Permission, roles_with

OPEN_PATHS = (
    "/health",
    "/api/v1/auth/sign-in",
    "/api/v1/auth/refresh",
    "/api/v1/agents/enrol",
    "/metrics",
)
"""Reachable without a token; each authenticates what it needs itself."""

GUARD_ATTRIBUTE = "appliance_permission"


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    return parse_bearer(connection.headers.get("authorization", ""))


def parse_bearer(header: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (401 without one)."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError(
            "missing bearer token", hint="sign in ('appliance login') and send the access token"
        )
    return token.strip()


def check_permission(principal: Principal, permissions: frozenset[Permission]) -> None:
    """403, naming the roles that would do, unless ``principal`` holds one of ``permissions``."""
    if not permissions & principal.permissions:
        holders = sorted({r for p in permissions for r in roles_with(p)}) or ["agents"]
        raise PermissionDeniedError(
            f"{principal.actor} may not do this: it needs "
            f"{' or '.join(sorted(permissions))} (held by: {', '.join(holders)})"
        )


class Authenticator(Protocol):
    """What the middleware needs of the identity service (``app.state.identity``)."""

    def authenticate(self, token: str) -> Principal: ...


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        identity: Authenticator = connection.app.state.identity
        token = bearer_token(connection)
        principal = await anyio.to_thread.run_sync(identity.authenticate, token)
        logs.actor.set(principal.actor)  # this request's log lines name who made it
        return AuthenticationResult(user=principal, auth=token)


def client_address(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """Where the request came from (for the audit log and residency checks)."""
    return connection.client.host if connection.client else None


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    user = connection.scope.get("user")
    if not isinstance(user, Principal):
        raise AuthenticationError("not signed in")
    return user


def requires(*permissions: Permission) -> Guard:
    """A guard that lets through only callers holding one of ``permissions``."""
    wanted = frozenset(permissions)

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
        check_permission(principal_of(connection), wanted)

    setattr(guard, GUARD_ATTRIBUTE, wanted)
    return guard


def open_endpoint(_connection: ASGIConnection[Any, Any, Any, Any], _h: BaseRouteHandler) -> None:
    """Marks a handler as deliberately reachable without a token."""


setattr(open_endpoint, GUARD_ATTRIBUTE, "open")
