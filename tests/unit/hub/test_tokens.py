"""Tokens as an attacker would try them: forged, replayed, stretched, stale, and misused.

User tokens are checked with ``verify_user_token`` against a real keyring; agent
tokens with ``verify_agent_token`` against the enrolled key. The identity and
enrolment services run on a real database (SQLite and PostgreSQL).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import update
from sqlmodel import Session, select

from appliance.clock import utcnow
from appliance.errors import AuthenticationError, InvalidInputError, RateLimitedError
from appliance.security.agent_tokens import issue_agent_token
from appliance.security.keys import KeyPair, public_pem
from appliance.wire.fleet import EnrolmentRequest
from hub.audit.service import AuditLog
from hub.auth.principal import Principal
from hub.auth.roles import AGENT_PERMISSIONS, Permission
from hub.db import session_scope
from hub.fleet.enrolment import EnrolmentService
from hub.fleet.records import EnrolmentTokenRecord
from hub.identity.backoff import SignInBackoff
from hub.identity.records import UserRecord
from hub.identity.service import IdentityService
from hub.identity.tokens import (
    JwtKeyring,
    TokenSettings,
    issue_access_token,
    verify_agent_token,
    verify_user_token,
)
from hub.residency.policy import ResidencyPolicy

SETTINGS = TokenSettings()
PASSWORD = "correct horse battery staple"


# -- forging helpers ---------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(obj: dict[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def forge_hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{segment(header)}.{segment(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def good_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": SETTINGS.issuer,
        "aud": SETTINGS.audience,
        "sub": "alice",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "jti-1",
        "roles": ["ml-engineer"],
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def sign(keyring: JwtKeyring, claims: dict[str, Any], kid: str | None = "current") -> str:
    """Sign ``claims`` with the keyring's current key (EdDSA); ``kid=None`` leaves it out."""
    headers = {"kid": keyring.current_kid if kid == "current" else kid} if kid else None
    return jwt.encode(claims, keyring.current.private, algorithm="EdDSA", headers=headers)


@pytest.fixture
def keyring(tmp_path: Path) -> JwtKeyring:
    return JwtKeyring(tmp_path / "jwt")


# -- user tokens -------------------------------------------------------------------------


def test_a_token_the_hub_issued_verifies(keyring: JwtKeyring) -> None:
    token, jti, expires = issue_access_token(
        keyring, SETTINGS, subject="alice", roles=["ml-engineer"]
    )
    claims = verify_user_token(token, keyring, SETTINGS)
    assert (claims["sub"], claims["jti"], claims["exp"]) == ("alice", jti, expires)
    assert jwt.get_unverified_header(token)["kid"] == keyring.current_kid


def test_alg_none_is_refused(keyring: JwtKeyring) -> None:
    token = f"{segment({'alg': 'none', 'typ': 'JWT', 'kid': keyring.current_kid})}."
    token += f"{segment(good_claims())}."
    with pytest.raises(AuthenticationError):
        verify_user_token(token, keyring, SETTINGS)


@pytest.mark.parametrize("encoding", ["pem", "raw"])
def test_hs256_signed_with_the_public_key_is_refused(keyring: JwtKeyring, encoding: str) -> None:
    public = keyring.current.public
    secret = (
        public_pem(public)
        if encoding == "pem"
        else public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    token = forge_hs256(
        {"alg": "HS256", "typ": "JWT", "kid": keyring.current_kid}, good_claims(), secret
    )
    with pytest.raises(AuthenticationError):
        verify_user_token(token, keyring, SETTINGS)


def test_expired_beyond_the_leeway_is_refused(keyring: JwtKeyring) -> None:
    now = int(time.time())
    stale = good_claims(iat=now - 1000, nbf=now - 1000, exp=now - SETTINGS.leeway_s - 5)
    with pytest.raises(AuthenticationError, match="expired"):
        verify_user_token(sign(keyring, stale), keyring, SETTINGS)


def test_expired_within_the_leeway_still_passes(keyring: JwtKeyring) -> None:
    now = int(time.time())
    claims = good_claims(iat=now - 900, nbf=now - 900, exp=now - SETTINGS.leeway_s // 3)
    assert verify_user_token(sign(keyring, claims), keyring, SETTINGS)["sub"] == "alice"


def test_not_yet_valid_beyond_the_leeway_is_refused(keyring: JwtKeyring) -> None:
    later = int(time.time()) + SETTINGS.leeway_s + 60
    with pytest.raises(AuthenticationError):
        verify_user_token(sign(keyring, good_claims(nbf=later)), keyring, SETTINGS)


def test_issued_in_the_future_beyond_the_leeway_is_refused(keyring: JwtKeyring) -> None:
    later = int(time.time()) + SETTINGS.leeway_s + 60
    claims = good_claims(iat=later, nbf=None, exp=later + 600)
    with pytest.raises(AuthenticationError):
        verify_user_token(sign(keyring, claims), keyring, SETTINGS)


@pytest.mark.parametrize(
    "claim, value", [("aud", "someone-else"), ("iss", "evil-hub"), ("aud", ["x", "y"])]
)
def test_wrong_audience_or_issuer_is_refused(keyring: JwtKeyring, claim: str, value: Any) -> None:
    with pytest.raises(AuthenticationError):
        verify_user_token(sign(keyring, good_claims(**{claim: value})), keyring, SETTINGS)


def test_unknown_kid_is_refused_even_when_the_signature_is_good(keyring: JwtKeyring) -> None:
    with pytest.raises(AuthenticationError, match="unknown key"):
        verify_user_token(sign(keyring, good_claims(), kid="hub-0-000000"), keyring, SETTINGS)


def test_missing_kid_is_refused(keyring: JwtKeyring) -> None:
    with pytest.raises(AuthenticationError, match="kid"):
        verify_user_token(sign(keyring, good_claims(), kid=None), keyring, SETTINGS)


def test_token_signed_by_a_foreign_key_with_the_real_kid_is_refused(keyring: JwtKeyring) -> None:
    foreign = Ed25519PrivateKey.generate()
    token = jwt.encode(
        good_claims(), foreign, algorithm="EdDSA", headers={"kid": keyring.current_kid}
    )
    with pytest.raises(AuthenticationError):
        verify_user_token(token, keyring, SETTINGS)


@pytest.mark.parametrize("change", [{"roles": ["admin"]}, {"sub": "admin"}, {"exp": 4_000_000_000}])
def test_tampered_payload_is_refused(keyring: JwtKeyring, change: dict[str, Any]) -> None:
    token, _, _ = issue_access_token(keyring, SETTINGS, subject="alice", roles=["viewer"])
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(change)
    forged = f"{header}.{segment(claims)}.{signature}"
    with pytest.raises(AuthenticationError):
        verify_user_token(forged, keyring, SETTINGS)


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "sub", "jti"])
def test_missing_required_claim_is_refused(keyring: JwtKeyring, claim: str) -> None:
    claims = good_claims()
    del claims[claim]
    with pytest.raises(AuthenticationError):
        verify_user_token(sign(keyring, claims), keyring, SETTINGS)


@pytest.mark.parametrize("garbage", ["", "x", "a.b.c", "..", "Bearer", "e30.e30.e30"])
def test_garbage_is_an_authentication_error_not_a_crash(keyring: JwtKeyring, garbage: str) -> None:
    with pytest.raises(AuthenticationError):
        verify_user_token(garbage, keyring, SETTINGS)


def test_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(
    keyring: JwtKeyring,
) -> None:
    old_kid = keyring.current_kid
    old_token, _, _ = issue_access_token(keyring, SETTINGS, subject="alice", roles=["viewer"])
    new_kid = keyring.rotate()
    assert new_kid != old_kid and keyring.current_kid == new_kid
    new_token, _, _ = issue_access_token(keyring, SETTINGS, subject="alice", roles=["viewer"])
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert verify_user_token(old_token, keyring, SETTINGS)["sub"] == "alice"
    assert verify_user_token(new_token, keyring, SETTINGS)["sub"] == "alice"
    # a hub restarted after the rotation (reloading the folder) agrees
    reloaded = JwtKeyring(keyring.directory)
    assert reloaded.current_kid == new_kid
    assert verify_user_token(old_token, reloaded, SETTINGS)["sub"] == "alice"


# -- agent tokens ------------------------------------------------------------------------


@pytest.fixture
def agent_key() -> KeyPair:
    return KeyPair(Ed25519PrivateKey.generate())


def enrolled(agent_id: int, key: KeyPair) -> Any:
    return lambda wanted: key.public if wanted == agent_id else None


def agent_claims(agent_id: int, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    subject = f"agent:{agent_id}"
    claims: dict[str, Any] = {
        "iss": subject,
        "sub": subject,
        "aud": SETTINGS.audience,
        "iat": now,
        "nbf": now,
        "exp": now + 120,
    }
    claims.update(overrides)
    return claims


def test_an_agent_token_signed_by_the_enrolled_key_verifies(agent_key: KeyPair) -> None:
    token = issue_agent_token(agent_key, 7)
    assert verify_agent_token(token, enrolled(7, agent_key), SETTINGS) == 7


def test_an_agent_token_signed_by_another_key_is_refused(agent_key: KeyPair) -> None:
    other = KeyPair(Ed25519PrivateKey.generate())
    with pytest.raises(AuthenticationError):
        verify_agent_token(issue_agent_token(other, 7), enrolled(7, agent_key), SETTINGS)


def test_an_agent_cannot_speak_for_another_agent(agent_key: KeyPair) -> None:
    """Agent 7 signs a token claiming to be agent 8: 8's key does not verify it."""
    key_8 = KeyPair(Ed25519PrivateKey.generate())

    def keys(wanted: int) -> Any:
        return {7: agent_key.public, 8: key_8.public}.get(wanted)

    with pytest.raises(AuthenticationError):
        verify_agent_token(issue_agent_token(agent_key, 8), keys, SETTINGS)


def test_an_agent_token_living_longer_than_the_maximum_is_refused(agent_key: KeyPair) -> None:
    token = issue_agent_token(agent_key, 7, ttl_s=SETTINGS.agent_token_max_ttl_s + 1)
    with pytest.raises(AuthenticationError, match="too long"):
        verify_agent_token(token, enrolled(7, agent_key), SETTINGS)


def test_an_agent_token_whose_subject_is_not_its_kid_is_refused(agent_key: KeyPair) -> None:
    claims = agent_claims(7, sub="agent:8")
    token = jwt.encode(claims, agent_key.private, algorithm="EdDSA", headers={"kid": "agent:7"})
    with pytest.raises(AuthenticationError, match="subject"):
        verify_agent_token(token, enrolled(7, agent_key), SETTINGS)


@pytest.mark.parametrize("kid", ["agent:", "agent:x", "agent:-1", "hub-1-abc", "agent:7/../8"])
def test_an_agent_token_with_a_malformed_kid_is_refused(agent_key: KeyPair, kid: str) -> None:
    token = jwt.encode(agent_claims(7), agent_key.private, algorithm="EdDSA", headers={"kid": kid})
    with pytest.raises(AuthenticationError):
        verify_agent_token(token, enrolled(7, agent_key), SETTINGS)


def test_an_expired_agent_token_is_refused(agent_key: KeyPair) -> None:
    now = int(time.time())
    claims = agent_claims(7, iat=now - 200, nbf=now - 200, exp=now - SETTINGS.leeway_s - 5)
    token = jwt.encode(claims, agent_key.private, algorithm="EdDSA", headers={"kid": "agent:7"})
    with pytest.raises(AuthenticationError, match="expired"):
        verify_agent_token(token, enrolled(7, agent_key), SETTINGS)


def test_an_unenrolled_or_revoked_agent_is_refused(agent_key: KeyPair) -> None:
    with pytest.raises(AuthenticationError, match="revoked"):
        verify_agent_token(issue_agent_token(agent_key, 7), lambda _id: None, SETTINGS)


# -- the identity service on a real database ----------------------------------------------


@pytest.fixture
def identity(engine: Any, tmp_path: Path) -> IdentityService:
    return IdentityService(
        engine,
        JwtKeyring(tmp_path / "jwt"),
        SETTINGS,
        AuditLog(KeyPair(Ed25519PrivateKey.generate())),
    )


def audit_entries(service: IdentityService, action: str) -> list[Any]:
    with Session(service.engine) as session:
        return service.audit.list(session, action=action, limit=1000)


def test_wrong_password_is_refused_and_audited(identity: IdentityService) -> None:
    identity.create_user("alice", PASSWORD, ["ml-engineer"])
    with pytest.raises(AuthenticationError, match="wrong username or password"):
        identity.sign_in("alice", PASSWORD + "!", source="192.0.2.7")
    with pytest.raises(AuthenticationError, match="wrong username or password"):
        identity.sign_in("nobody", PASSWORD, source="192.0.2.7")
    entries = audit_entries(identity, "auth.sign_in")
    assert [(e.target, e.outcome, e.source) for e in entries] == [
        ("user:alice", "refused", "192.0.2.7"),
        ("user:nobody", "refused", "192.0.2.7"),
    ]
    pair = identity.sign_in("alice", PASSWORD)
    assert identity.authenticate(pair.access_token).actor == "user:alice"
    assert audit_entries(identity, "auth.sign_in")[-1].outcome == "ok"


def test_a_refresh_token_works_once(identity: IdentityService) -> None:
    identity.create_user("alice", PASSWORD, ["ml-engineer"])
    first = identity.sign_in("alice", PASSWORD)
    second = identity.refresh(first.refresh_token)
    assert identity.authenticate(second.access_token).name == "alice"
    with pytest.raises(AuthenticationError):
        identity.refresh(first.refresh_token)
    third = identity.refresh(second.refresh_token)  # the new one works (once)
    with pytest.raises(AuthenticationError):
        identity.refresh(second.refresh_token)
    assert third.refresh_token not in {first.refresh_token, second.refresh_token}
    with pytest.raises(AuthenticationError):
        identity.refresh("not-a-refresh-token")


def test_sign_out_revokes_the_access_and_refresh_token(identity: IdentityService) -> None:
    identity.create_user("alice", PASSWORD, ["ml-engineer"])
    pair = identity.sign_in("alice", PASSWORD)
    principal = identity.authenticate(pair.access_token)
    identity.sign_out(principal, pair.refresh_token)
    with pytest.raises(AuthenticationError, match="revoked"):
        identity.authenticate(pair.access_token)
    with pytest.raises(AuthenticationError):
        identity.refresh(pair.refresh_token)
    other = identity.sign_in("alice", PASSWORD)  # other sessions are unaffected
    assert identity.authenticate(other.access_token).name == "alice"


def test_sign_out_cannot_revoke_another_users_refresh_token(identity: IdentityService) -> None:
    identity.create_user("alice", PASSWORD, ["ml-engineer"])
    identity.create_user("omar", PASSWORD, ["approver"])
    alice = identity.sign_in("alice", PASSWORD)
    omar = identity.sign_in("omar", PASSWORD)
    identity.sign_out(identity.authenticate(alice.access_token), omar.refresh_token)
    assert identity.refresh(omar.refresh_token).access_token


def test_a_disabled_user_is_locked_out_at_once(identity: IdentityService) -> None:
    user = identity.create_user("alice", PASSWORD, ["ml-engineer"])
    pair = identity.sign_in("alice", PASSWORD)
    identity.set_disabled(user.id, True, actor="user:admin")
    with pytest.raises(AuthenticationError, match="disabled"):
        identity.authenticate(pair.access_token)
    with pytest.raises(AuthenticationError):
        identity.refresh(pair.refresh_token)
    with pytest.raises(AuthenticationError, match="wrong username or password"):
        identity.sign_in("alice", PASSWORD)
    assert audit_entries(identity, "auth.sign_in")[-1].outcome == "refused"
    identity.set_disabled(user.id, False, actor="user:admin")
    assert identity.authenticate(identity.sign_in("alice", PASSWORD).access_token)


def test_roles_come_from_the_database_not_from_the_token(identity: IdentityService) -> None:
    identity.principals.ttl_s = 0.05  # records are re-read at most this often per token
    identity.create_user("alice", PASSWORD, ["ml-engineer"])
    pair = identity.sign_in("alice", PASSWORD)
    assert Permission.MODELS_WRITE in identity.authenticate(pair.access_token).permissions
    with session_scope(identity.engine) as session:  # changed outside the service
        record = session.exec(select(UserRecord).where(UserRecord.username == "alice")).one()
        record.roles = ["viewer"]
        session.add(record)
    time.sleep(0.1)
    principal = identity.authenticate(pair.access_token)  # same token, claims say ml-engineer
    assert principal.roles == frozenset({"viewer"})
    assert Permission.MODELS_WRITE not in principal.permissions
    assert Permission.MODELS_READ in principal.permissions


def test_an_account_s_zone_is_bound_at_creation_and_carried_by_its_principal(
    identity: IdentityService,
) -> None:
    identity.zones = ("ae-dxb", "ae-auh")
    with pytest.raises(InvalidInputError, match="mars"):
        identity.create_user("gpu-mars", PASSWORD, ["worker"], zone="mars")
    assert identity.create_user("gpu-auh", PASSWORD, ["worker"], zone="ae-auh").zone == "ae-auh"
    identity.create_user("gpu-home", PASSWORD, ["worker"])
    bound = identity.authenticate(identity.sign_in("gpu-auh", PASSWORD).access_token)
    home = identity.authenticate(identity.sign_in("gpu-home", PASSWORD).access_token)
    assert (bound.zone, home.zone) == ("ae-auh", None)
    assert {u.username: u.zone for u in identity.list_users()} == {
        "gpu-auh": "ae-auh",
        "gpu-home": None,
    }


def test_a_user_token_for_a_deleted_name_is_refused(identity: IdentityService) -> None:
    token, _, _ = issue_access_token(identity.keyring, SETTINGS, subject="ghost", roles=["admin"])
    with pytest.raises(AuthenticationError):
        identity.authenticate(token)


# -- enrolment tokens --------------------------------------------------------------------


ADMIN = Principal(
    kind="user", id=1, name="admin", roles=frozenset({"admin"}), permissions=frozenset()
)


@pytest.fixture
def enrolment(engine: Any) -> EnrolmentService:
    return EnrolmentService(engine, ResidencyPolicy.single_zone("ae-dxb"), AuditLog())


def enrol_request(token: str, name: str) -> EnrolmentRequest:
    key = Ed25519PrivateKey.generate()
    return EnrolmentRequest(
        token=token, name=name, public_key=public_pem(key.public_key()).decode(), runtime="onnx"
    )


def test_an_enrolment_token_works_once(enrolment: EnrolmentService) -> None:
    token = enrolment.create_token(ADMIN, "ae-dxb", "edge", ttl_s=600).token
    agent = enrolment.enrol(enrol_request(token, "edge-1"))
    assert (agent.zone, agent.group) == ("ae-dxb", "edge")
    with pytest.raises(AuthenticationError, match="unknown, used or expired"):
        enrolment.enrol(enrol_request(token, "edge-2"))


def test_an_expired_enrolment_token_is_refused(enrolment: EnrolmentService) -> None:
    token = enrolment.create_token(ADMIN, "ae-dxb", "edge", ttl_s=600).token
    with session_scope(enrolment.engine) as session:
        session.execute(
            update(EnrolmentTokenRecord).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    with pytest.raises(AuthenticationError, match="unknown, used or expired"):
        enrolment.enrol(enrol_request(token, "edge-1"))


def test_an_enrolled_agent_authenticates_with_agent_permissions_only(
    engine: Any, identity: IdentityService, enrolment: EnrolmentService
) -> None:
    key = KeyPair(Ed25519PrivateKey.generate())
    token = enrolment.create_token(ADMIN, "ae-dxb", "edge", ttl_s=600).token
    request = EnrolmentRequest(
        token=token, name="edge-1", public_key=public_pem(key.public).decode(), runtime="onnx"
    )
    agent = enrolment.enrol(request)
    principal = identity.authenticate(issue_agent_token(key, agent.id))
    assert (principal.kind, principal.id, principal.zone) == ("agent", agent.id, "ae-dxb")
    assert principal.permissions == AGENT_PERMISSIONS
    enrolment.revoke(ADMIN, agent.id)
    with pytest.raises(AuthenticationError):
        identity.authenticate(issue_agent_token(key, agent.id))


def test_failed_sign_ins_lock_the_account_whatever_the_address(identity: IdentityService) -> None:
    now = [1000.0]
    identity.backoff = SignInBackoff(clock=lambda: now[0])
    identity.create_user("fatima", PASSWORD, ["approver"])
    identity.create_user("omar", PASSWORD, ["approver"])
    for i in range(5):
        with pytest.raises(AuthenticationError):
            identity.sign_in("fatima", "wrong-password", source=f"192.0.2.{i}")
    with pytest.raises(RateLimitedError, match="try again in 30 s"):
        identity.sign_in("fatima", PASSWORD, source="198.51.100.1")  # even the right one
    identity.sign_in("omar", PASSWORD)  # other accounts are not affected
    now[0] += 31
    with pytest.raises(AuthenticationError):
        identity.sign_in("fatima", "wrong-again")
    with pytest.raises(RateLimitedError, match="try again in 60 s"):  # doubled
        identity.sign_in("fatima", PASSWORD)
    now[0] += 61
    identity.sign_in("fatima", PASSWORD)  # the right password clears the count
    with pytest.raises(AuthenticationError):
        identity.sign_in("fatima", "wrong")
    reasons = [e.detail.get("reason") for e in audit_entries(identity, "auth.sign_in")]
    assert reasons.count("account locked after failed sign-ins") == 2


def test_an_admin_may_not_also_ship_or_approve_models(identity: IdentityService) -> None:
    """Issue 14, finding 12: admin + approver + ml-engineer in one account."""
    for roles in (["admin", "approver"], ["admin", "ml-engineer", "approver"]):
        with pytest.raises(InvalidInputError, match="admin may not also be"):
            identity.create_user("boss", PASSWORD, roles)
    assert identity.create_user("boss", PASSWORD, ["admin", "auditor"]).roles == [
        "admin",
        "auditor",
    ]
