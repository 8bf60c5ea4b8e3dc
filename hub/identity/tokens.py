"""JSON Web Tokens for users (signed by the hub) and agents (signed by themselves).

Validation is strict in every case: the algorithm is pinned to EdDSA, ``exp``,
``iat``, ``iss``, ``aud`` and ``sub`` are required, the key is looked up by
``kid`` in a fixed set only (never taken from the token), and the clock leeway
is small and bounded. User tokens carry a ``jti`` so they can be revoked.

The hub's token keys live in ``keys/jwt/<kid>.key``; ``keys/jwt/current`` names
the one that signs. Rotation adds a key and makes it current; older keys keep
verifying until they are pruned, so tokens issued before a rotation stay valid
until they expire.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from appliance.errors import AuthenticationError
from appliance.fsutil import atomic_write_bytes
from appliance.ids import parse_id
from appliance.security.agent_tokens import AGENT_KID_PREFIX, ALGORITHM, DEFAULT_AUDIENCE
from appliance.security.keys import KeyPair, init_keypair, load_keypair

REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]
KEEP_KEYS = 3


@dataclass(frozen=True)
class TokenSettings:
    issuer: str = "appliance-hub"
    audience: str = DEFAULT_AUDIENCE
    access_ttl_s: int = 900
    refresh_ttl_s: int = 8 * 3600
    leeway_s: int = 30
    agent_token_max_ttl_s: int = 300
    """Agents sign their own short tokens; a longer one is refused."""


class JwtKeyring:
    """The hub's token-signing keys: one current, a few previous for verification."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        if not (directory / "current").exists():
            self.rotate()
        self._load()

    def _load(self) -> None:
        self.current_kid = (self.directory / "current").read_text().strip()
        self._keys: dict[str, KeyPair] = {
            path.stem: load_keypair(self.directory, path.stem)
            for path in self.directory.glob("*.key")
        }
        self.current = self._keys[self.current_kid]

    def rotate(self) -> str:
        """Create a new signing key and make it current; prune the oldest beyond a few."""
        kid = f"hub-{int(time.time())}-{secrets.token_hex(3)}"
        init_keypair(self.directory, kid)
        atomic_write_bytes(self.directory / "current", kid.encode(), mode=0o600)
        keys = sorted(self.directory.glob("*.key"), key=lambda p: p.stat().st_mtime)
        for old in keys[:-KEEP_KEYS]:
            old.unlink(missing_ok=True)
            old.with_suffix(".pub").unlink(missing_ok=True)
        self._load()
        return kid

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        pair = self._keys.get(kid)
        return pair.public if pair else None


def issue_access_token(
    keyring: JwtKeyring, settings: TokenSettings, *, subject: str, roles: list[str]
) -> tuple[str, str, int]:
    """Return ``(token, jti, expires_at)``."""
    now = int(time.time())
    jti = secrets.token_urlsafe(16)
    expires = now + settings.access_ttl_s
    claims = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": expires,
        "jti": jti,
        "roles": roles,
    }
    token = jwt.encode(
        claims, keyring.current.private, algorithm=ALGORITHM, headers={"kid": keyring.current_kid}
    )
    return token, jti, expires


def token_kid(token: str) -> str:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise AuthenticationError(f"malformed token: {exc}") from exc
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise AuthenticationError("token has no key id (kid)")
    return kid


def _decode(
    token: str, key: Ed25519PublicKey, *, issuer: str, settings: TokenSettings
) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=settings.audience,
            issuer=issuer,
            leeway=settings.leeway_s,
            options={"require": REQUIRED_CLAIMS, "verify_signature": True},
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthenticationError("token has expired", hint="sign in again or refresh") from exc
    except jwt.ImmatureSignatureError as exc:
        raise AuthenticationError("token is not valid yet (check the clock)") from exc
    except jwt.PyJWTError as exc:
        raise AuthenticationError(f"token refused: {exc}") from exc
    if claims["iat"] > time.time() + settings.leeway_s:
        raise AuthenticationError("token was issued in the future (check the clock)")
    return claims


def verify_user_token(token: str, keyring: JwtKeyring, settings: TokenSettings) -> dict[str, Any]:
    kid = token_kid(token)
    key = keyring.public_key(kid)
    if key is None:
        raise AuthenticationError("token signed by an unknown key", hint="sign in again")
    claims = _decode(token, key, issuer=settings.issuer, settings=settings)
    if not isinstance(claims.get("jti"), str):
        raise AuthenticationError("token has no jti")
    return claims


def verify_agent_token(
    token: str,
    agent_key: Callable[[int], Ed25519PublicKey | None],
    settings: TokenSettings,
) -> int:
    """Return the agent id whose enrolled key signed ``token``."""
    kid = token_kid(token)
    agent_id = parse_id(kid.removeprefix(AGENT_KID_PREFIX))
    if not kid.startswith(AGENT_KID_PREFIX) or agent_id is None:
        raise AuthenticationError("token signed by an unknown key")
    key = agent_key(agent_id)
    if key is None:
        raise AuthenticationError(
            "agent is not enrolled or has been revoked",
            hint="enrol the agent again with a new token",
        )
    claims = _decode(token, key, issuer=kid, settings=settings)
    if claims["sub"] != kid:
        raise AuthenticationError("agent token subject does not match its key")
    if claims["exp"] - claims["iat"] > settings.agent_token_max_ttl_s:
        raise AuthenticationError("agent token lives too long")
    return agent_id
