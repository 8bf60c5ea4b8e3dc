"""A renewed session keeps everything the sign-in pinned."""

from __future__ import annotations

import json

import httpx

from appliance.security.credentials import UserCredentials


def test_renewal_rotates_tokens_and_keeps_the_pinned_ca(tmp_path):
    path = tmp_path / "session.json"
    UserCredentials("old-access", "old-refresh", "https://hub:8700", hub_ca="/site/ca.crt").save(
        path
    )

    def hub(request: httpx.Request) -> httpx.Response:  # the hub's refresh endpoint
        assert json.loads(request.content) == {"refresh_token": "old-refresh"}
        return httpx.Response(
            200, json={"access_token": "new-access", "refresh_token": "new-refresh"}
        )

    creds = UserCredentials.load(path)
    with httpx.Client(base_url="https://hub:8700", transport=httpx.MockTransport(hub)) as http:
        assert creds.renew(http) is True
    saved = json.loads(path.read_text())
    assert (saved["access_token"], saved["refresh_token"]) == ("new-access", "new-refresh")
    assert saved["hub_ca"] == "/site/ca.crt" and saved["hub_url"] == "https://hub:8700"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_refused_renewal_changes_nothing(tmp_path):
    path = tmp_path / "session.json"
    UserCredentials("a", "r", "https://hub:8700").save(path)
    before = path.read_bytes()
    refused = httpx.MockTransport(lambda _request: httpx.Response(401, json={"detail": "used"}))
    with httpx.Client(base_url="https://hub:8700", transport=refused) as http:
        assert UserCredentials.load(path).renew(http) is False
    assert path.read_bytes() == before
