"""Sign-in, refresh, sign-out and user management."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get, post

from hub.auth.guards import client_address, open_endpoint, principal_of, requires
from hub.auth.roles import Permission
from hub.identity.service import IdentityService, TokenPair, UserInfo
from hub.pagination import After, Limit


class SignIn(msgspec.Struct, forbid_unknown_fields=True):
    username: str
    password: str


class Refresh(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: str


class SignOut(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: str | None = None


class NewUser(msgspec.Struct, forbid_unknown_fields=True):
    """Only these fields; an id, a creation date or a 'disabled' flag is refused."""

    username: str
    password: str
    roles: list[str]
    zone: str | None = None
    """Bind the account to a residency zone (a training worker's); default the hub's."""


class Me(msgspec.Struct):
    actor: str
    roles: list[str]
    permissions: list[str]
    zone: str | None = None
    """The zone the account is bound to (agents: their own); ``None``: the hub's."""


class AuthController(Controller):
    path = "/api/v1/auth"
    tags = ["auth"]

    @post(
        "/sign-in",
        operation_id="signIn",
        status_code=200,
        guards=[open_endpoint],
        sync_to_thread=True,
    )
    def sign_in(
        self, data: SignIn, identity: IdentityService, request: Request[Any, Any, Any]
    ) -> TokenPair:
        return identity.sign_in(data.username, data.password, source=client_address(request))

    @post(
        "/refresh",
        operation_id="refreshToken",
        status_code=200,
        guards=[open_endpoint],
        sync_to_thread=True,
    )
    def refresh(self, data: Refresh, identity: IdentityService) -> TokenPair:
        return identity.refresh(data.refresh_token)

    @post(
        "/sign-out",
        operation_id="signOut",
        status_code=204,
        guards=[requires(*Permission)],
        sync_to_thread=True,
    )
    def sign_out(
        self, data: SignOut, identity: IdentityService, request: Request[Any, Any, Any]
    ) -> None:
        identity.sign_out(principal_of(request), data.refresh_token)

    @get("/me", operation_id="whoAmI", guards=[requires(*Permission)])
    async def me(self, request: Request[Any, Any, Any]) -> Me:
        principal = principal_of(request)
        return Me(
            actor=principal.actor,
            roles=sorted(principal.roles),
            permissions=sorted(principal.permissions),
            zone=principal.zone,
        )


class UserController(Controller):
    path = "/api/v1/users"
    tags = ["users"]
    guards = [requires(Permission.USERS_MANAGE)]

    @get("/", operation_id="listUsers", sync_to_thread=True)
    def list_users(
        self, identity: IdentityService, after: After = 0, limit: Limit = 100
    ) -> list[UserInfo]:
        return identity.list_users(after_id=after, limit=limit)

    @post("/", operation_id="createUser", sync_to_thread=True)
    def create_user(
        self, data: NewUser, identity: IdentityService, request: Request[Any, Any, Any]
    ) -> UserInfo:
        return identity.create_user(
            data.username,
            data.password,
            data.roles,
            actor=principal_of(request).actor,
            zone=data.zone,
        )

    @post(
        "/{user_id:int}/disable", operation_id="disableUser", status_code=200, sync_to_thread=True
    )
    def disable(
        self, user_id: int, identity: IdentityService, request: Request[Any, Any, Any]
    ) -> UserInfo:
        return identity.set_disabled(user_id, True, actor=principal_of(request).actor)
