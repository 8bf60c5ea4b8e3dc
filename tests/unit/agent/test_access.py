"""Inference keys as agents check them: from the signed index, offline, per model."""

from __future__ import annotations

import hashlib

import msgspec
import pytest

from agent.access import DataPlaneAccess
from appliance.errors import AuthenticationError, PermissionDeniedError
from appliance.trust.layout import GroupIndex, KeyGrant

SECRET = "s3cret-s3cret-s3cret"
KEY = f"ak_0a1b2c3d4e5f_{SECRET}"


def _grant(models: list[str] | None = None, expires_at: float = 2e9) -> KeyGrant:
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    return KeyGrant(sha256=digest, models=models or [], expires_at=expires_at)


def test_a_key_is_checked_against_the_index_and_its_models():
    access = DataPlaneAccess(clock=lambda: 1.9e9)
    access.update({"0a1b2c3d4e5f": _grant(["tiny"])})
    assert access.check(f"Bearer {KEY}", "tiny") == "inference-key:0a1b2c3d4e5f"  # logs name it
    access.check(f"bearer {KEY}", None)  # status and metrics: any live key
    with pytest.raises(PermissionDeniedError):
        access.check(f"Bearer {KEY}", "other")
    for bad in (None, "", "Basic abc", f"Bearer {KEY}x", "Bearer ak_unknown_x", "Bearer xyz"):
        with pytest.raises(AuthenticationError):
            access.check(bad, "tiny")
    access.update({"0a1b2c3d4e5f": _grant(expires_at=1.8e9)})
    with pytest.raises(AuthenticationError, match="expired"):
        access.check(f"Bearer {KEY}", "tiny")
    access.update({})  # revoked: the next index no longer has it
    with pytest.raises(AuthenticationError):
        access.check(f"Bearer {KEY}", "tiny")


def test_keys_come_back_from_the_last_verified_index_on_disk(tmp_path):
    index = GroupIndex(zone="ae-dxb", group="default", keys={"0a1b2c3d4e5f": _grant()})
    (tmp_path / "index.json").write_bytes(msgspec.json.encode(index))
    access = DataPlaneAccess(clock=lambda: 1.9e9)
    access.reload(tmp_path)
    access.check(f"Bearer {KEY}", "tiny")


def test_an_open_data_plane_asks_for_nothing():
    assert DataPlaneAccess(open_access=True).check(None, "tiny") is None


def test_a_client_certificate_grant_is_matched_against_the_handshake_never_a_bearer_key():
    """mTLS as the alternative to keys: the grant holds the certificate's SHA-256. Someone
    who has read the (public) certificate and sends its bytes as a bearer token gets
    nothing: certificate grants are looked up by the handshake only."""
    der = b"0\x82certificate-der"
    digest = hashlib.sha256(der).hexdigest()
    grant = KeyGrant(sha256=digest, certificate=True, models=["tiny"], expires_at=2e9)
    access = DataPlaneAccess(clock=lambda: 1.9e9)
    access.update({"c0ffee000001": grant})
    assert access.check(None, "tiny", client_certificate=digest) == "inference-key:c0ffee000001"
    with pytest.raises(PermissionDeniedError, match="client certificate may not"):
        access.check(None, "other", client_certificate=digest)
    with pytest.raises(AuthenticationError, match="not one the hub issued"):
        access.check(None, "tiny", client_certificate=hashlib.sha256(b"other").hexdigest())
    forged = f"ak_c0ffee000001_{der.decode(errors='replace')}"
    with pytest.raises(AuthenticationError):
        access.check(f"Bearer {forged}", "tiny", client_certificate=None)
    access.update({})
    with pytest.raises(AuthenticationError, match="revoked"):
        access.check(None, "tiny", client_certificate=digest)
