"""Users, sign-in, refresh and revocation; turning a bearer token into a Principal."""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlmodel import Session, col, select

from appliance.clock import as_utc, iso_utc, utcnow
from appliance.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
)
from appliance.security.agent_tokens import AGENT_KID_PREFIX
from hub.audit.service import AuditLog
from hub.auth.principal import Principal
from hub.auth.roles import AGENT_PERMISSIONS, ROLES, permissions_for
from hub.auth.secrets import sha256_hex
from hub.db import session_scope
from hub.fleet.records import AgentRecord
from hub.identity.backoff import SignInBackoff
from hub.identity.passwords import (
    MIN_PASSWORD_LENGTH,
    dummy_hash,
    hash_password,
    verify_password,
)
from hub.identity.principal_cache import PrincipalCache
from hub.identity.records import (
    AccountZoneRecord,
    RefreshTokenRecord,
    RevokedTokenRecord,
    UserRecord,
)
from hub.identity.tokens import (
    JwtKeyring,
    TokenSettings,
    issue_access_token,
    token_kid,
    verify_agent_token,
    verify_user_token,
)
from hub.pagination import page_after

USERNAME = re.compile(r"[a-z][a-z0-9._-]{1,63}")


class TokenPair(msgspec.Struct, kw_only=True):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int


class UserInfo(msgspec.Struct, kw_only=True):
    id: int
    username: str
    roles: list[str]
    disabled: bool
    created_at: str
    zone: str | None = None
    """The zone the account is bound to; ``None``: the hub's home zone."""


def _user_info(record: UserRecord, zone: str | None = None) -> UserInfo:
    return UserInfo(
        id=record.id or 0,
        username=record.username,
        roles=list(record.roles),
        disabled=record.disabled,
        created_at=iso_utc(record.created_at),
        zone=zone,
    )


def _zone_of(session: Session, user_id: int | None) -> str | None:
    row = session.get(AccountZoneRecord, user_id or 0)
    return row.zone if row is not None else None


@dataclass
class IdentityService:
    engine: Engine
    keyring: JwtKeyring
    settings: TokenSettings
    audit: AuditLog
    principals: PrincipalCache = field(default_factory=PrincipalCache)
    """Who recently verified tokens belong to (records read at most every 2 s per token)."""
    zones: tuple[str, ...] = ()
    """The site's residency zones, which an account may be bound to (empty: any)."""
    backoff: SignInBackoff = field(default_factory=SignInBackoff)
    """Failed sign-ins per username: a guesser spread over many addresses still waits."""

    # -- users ---------------------------------------------------------------------------

    def create_user(
        self,
        username: str,
        password: str,
        roles: list[str],
        *,
        actor: str = "system",
        zone: str | None = None,
    ) -> UserInfo:
        """``zone`` binds the account to a residency zone: a training worker reads only what
        that zone may read, whatever its requests say."""
        if not USERNAME.fullmatch(username):
            raise InvalidInputError(
                f"username: {username!r} is not valid",
                hint="2-64 lower-case letters, digits, '.', '_' or '-', starting with a letter",
            )
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidInputError(f"password: must be at least {MIN_PASSWORD_LENGTH} characters")
        unknown = sorted(set(roles) - set(ROLES))
        if unknown or not roles:
            raise InvalidInputError(
                f"roles: unknown {unknown or 'none given'}; one of {list(ROLES)}"
            )
        apart = sorted({"ml-engineer", "approver"} & set(roles)) if "admin" in roles else []
        if apart:
            raise InvalidInputError(
                f"roles: admin may not also be {' or '.join(apart)}",
                hint="separation of duties: whoever manages people and keys does not ship "
                "or approve models; give them a second account",
            )
        if zone is not None and self.zones and zone not in self.zones:
            raise InvalidInputError(
                f"zone: {zone!r} is not one of this site's zones ({', '.join(self.zones)})"
            )
        try:
            with session_scope(self.engine) as session:
                record = UserRecord(
                    username=username,
                    password_hash=hash_password(password),
                    roles=sorted(set(roles)),
                )
                session.add(record)
                session.flush()
                if zone is not None:
                    session.add(AccountZoneRecord(user_id=record.id or 0, zone=zone))
                self.audit.append(
                    session,
                    actor=actor,
                    action="user.create",
                    target=f"user:{username}",
                    outcome="ok",
                    detail={"roles": record.roles, "zone": zone},
                )
                return _user_info(record, zone)
        except SAIntegrityError as exc:
            raise ConflictError(f"user {username!r} already exists") from exc

    def list_users(self, *, after_id: int = 0, limit: int = 100) -> list[UserInfo]:
        with Session(self.engine) as session:
            rows = session.exec(
                page_after(select(UserRecord), col(UserRecord.id), after_id, limit)
            ).all()
            return [_user_info(r, _zone_of(session, r.id)) for r in rows]

    def set_disabled(self, user_id: int, disabled: bool, *, actor: str = "system") -> UserInfo:
        with session_scope(self.engine) as session:
            record = session.get(UserRecord, user_id)
            if record is None:
                raise NotFoundError(f"no user with id {user_id}")
            record.disabled = disabled
            if disabled:
                for token in session.exec(
                    select(RefreshTokenRecord).where(RefreshTokenRecord.user_id == user_id)
                ):
                    token.revoked = True
                    session.add(token)
            session.add(record)
            session.flush()
            self.audit.append(
                session,
                actor=actor,
                action="user.disable" if disabled else "user.enable",
                target=f"user:{record.username}",
                outcome="ok",
            )
            info = _user_info(record, _zone_of(session, record.id))
        self.principals.forget_user(user_id)  # after the commit, like sign-out
        return info

    # -- sign-in ---------------------------------------------------------------------------

    def _new_pair(self, session: Session, user: UserRecord) -> TokenPair:
        access, _jti, _exp = issue_access_token(
            self.keyring, self.settings, subject=user.username, roles=list(user.roles)
        )
        refresh = secrets.token_urlsafe(32)
        session.add(
            RefreshTokenRecord(
                user_id=user.id or 0,
                token_sha256=sha256_hex(refresh),
                expires_at=utcnow() + timedelta(seconds=self.settings.refresh_ttl_s),
            )
        )
        return TokenPair(
            access_token=access, refresh_token=refresh, expires_in=self.settings.access_ttl_s
        )

    def sign_in(self, username: str, password: str, *, source: str | None = None) -> TokenPair:
        target = f"user:{username[:64]}"
        wait = self.backoff.wait_s(username[:64])
        if wait > 0:
            self._refuse_sign_in(target, source, "account locked after failed sign-ins")
            raise RateLimitedError(
                f"too many failed sign-ins for {username[:64]!r}; try again in {math.ceil(wait)} s",
                hint="each failed attempt doubles the wait; a correct password clears it",
            )
        with session_scope(self.engine) as session:
            user = session.exec(select(UserRecord).where(UserRecord.username == username)).first()
            stored = user.password_hash if user else dummy_hash()
            if verify_password(password, stored) and user is not None and not user.disabled:
                self.audit.append(
                    session,
                    actor=target,
                    action="auth.sign_in",
                    target=target,
                    outcome="ok",
                    source=source,
                )
                pair = self._new_pair(session, user)
                self.backoff.succeeded(username[:64])
                return pair
        failures = self.backoff.failed(username[:64])
        self._refuse_sign_in(target, source, "wrong username or password", failures)
        raise AuthenticationError("wrong username or password")

    def _refuse_sign_in(
        self, target: str, source: str | None, reason: str, failures: int | None = None
    ) -> None:
        detail: dict[str, Any] = {"reason": reason}
        if failures is not None:
            detail["failures_in_a_row"] = failures
        with session_scope(self.engine) as session:
            self.audit.append(
                session,
                actor=target,
                action="auth.sign_in",
                target=target,
                outcome="refused",
                source=source,
                detail=detail,
            )

    def refresh(self, refresh_token: str) -> TokenPair:
        """Trade a refresh token for a new pair; each refresh token works once."""
        with session_scope(self.engine) as session:
            record = session.exec(
                select(RefreshTokenRecord)
                .where(RefreshTokenRecord.token_sha256 == sha256_hex(refresh_token))
                .with_for_update()
            ).first()
            if record is None or record.revoked or as_utc(record.expires_at) < utcnow():
                raise AuthenticationError(
                    "refresh token is invalid, used or expired", hint="sign in again"
                )
            user = session.get(UserRecord, record.user_id)
            if user is None or user.disabled:
                raise AuthenticationError("user is disabled")
            record.revoked = True
            session.add(record)
            return self._new_pair(session, user)

    def sign_out(self, principal: Principal, refresh_token: str | None) -> None:
        try:
            self._sign_out(principal, refresh_token)
        finally:  # after the commit: a request racing it cannot keep the old answer
            if principal.token_id:
                self.principals.forget_token(principal.token_id)

    def _sign_out(self, principal: Principal, refresh_token: str | None) -> None:
        with session_scope(self.engine) as session:
            if principal.token_id and principal.token_expires:
                session.merge(
                    RevokedTokenRecord(
                        jti=principal.token_id,
                        expires_at=datetime.fromtimestamp(principal.token_expires, UTC),
                    )
                )
            if refresh_token:
                record = session.exec(
                    select(RefreshTokenRecord).where(
                        RefreshTokenRecord.token_sha256 == sha256_hex(refresh_token)
                    )
                ).first()
                if record is not None and record.user_id == principal.id:
                    record.revoked = True
                    session.add(record)

    # -- authentication --------------------------------------------------------------------

    def agent_public_key(self, agent_id: int) -> Ed25519PublicKey | None:
        with Session(self.engine) as session:
            agent = session.get(AgentRecord, agent_id)
            if agent is None or agent.revoked_at is not None or not agent.public_key:
                return None
            key = serialization.load_pem_public_key(agent.public_key.encode())
            return key if isinstance(key, Ed25519PublicKey) else None

    def cached(self, token: str) -> Principal | None:
        """The principal of a user token verified moments ago; None: :meth:`authenticate`."""
        return self.principals.get(token)

    def authenticate(self, token: str) -> Principal:
        if token_kid(token).startswith(AGENT_KID_PREFIX):
            return self._authenticate_agent(token)
        known = self.principals.get(token)
        if known is not None:
            return known
        principal = self._user_principal(verify_user_token(token, self.keyring, self.settings))
        self.principals.put(token, principal)
        return principal

    def _user_principal(self, claims: dict[str, Any]) -> Principal:
        with Session(self.engine) as session:
            if session.get(RevokedTokenRecord, claims["jti"]) is not None:
                raise AuthenticationError("token has been revoked", hint="sign in again")
            user = session.exec(
                select(UserRecord).where(UserRecord.username == claims["sub"])
            ).first()
            if user is None or user.disabled:
                raise AuthenticationError("user no longer exists or is disabled")
            roles = frozenset(user.roles)  # from the records, so a role change applies at once
            return Principal(
                kind="user",
                id=user.id or 0,
                name=user.username,
                roles=roles,
                permissions=permissions_for(roles),
                zone=_zone_of(session, user.id),
                token_id=claims["jti"],
                token_expires=int(claims["exp"]),
            )

    def _authenticate_agent(self, token: str) -> Principal:
        agent_id = verify_agent_token(token, self.agent_public_key, self.settings)
        with Session(self.engine) as session:
            agent = session.get(AgentRecord, agent_id)
            if agent is None or agent.revoked_at is not None:
                raise AuthenticationError("agent has been revoked")
            return Principal(
                kind="agent",
                id=agent_id,
                name=agent.name,
                roles=frozenset(),
                permissions=AGENT_PERMISSIONS,
                zone=agent.zone,
                group=agent.group,
            )
