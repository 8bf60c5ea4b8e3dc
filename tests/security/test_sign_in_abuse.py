"""Issue 14, finding 9: 200 wrong passwords with a rotating ``X-Forwarded-For`` got 200 times 401,
no 429, no lockout, and the forged addresses went into the audit ``source``.

Now the hub believes ``X-Forwarded-For`` only from configured proxies (none by default),
so the per-address limit counts the real address, and failed sign-ins are counted per
account as well, whatever address they come from.
"""

from __future__ import annotations

import httpx
import pytest

from appliance.cli.demo.processes import ServiceProcess
from appliance.cli.demo.site import Site
from appliance.client.hub import HubClient

pytestmark = pytest.mark.integration


def _from(address: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30)


def test_forged_forwarded_addresses_and_many_addresses_still_lock_an_account(
    hub: ServiceProcess, site: Site, admin: HubClient
) -> None:
    url = f"{hub.url}/api/v1/auth/sign-in"
    wrong = {"username": "fatima", "password": "not-her-password"}
    with _from("127.0.0.21") as http:
        answers = [
            http.post(url, json=wrong, headers={"x-forwarded-for": f"10.9.{i // 250}.{i % 250}"})
            for i in range(40)
        ]
    codes = [a.status_code for a in answers]
    assert codes[:5] == [401] * 5  # then the account waits, and the address is throttled
    assert set(codes[5:]) == {429}
    assert "too many failed sign-ins for 'fatima'" in answers[5].json()["detail"]

    right = {"username": "fatima", "password": site.passwords["fatima"]}
    with _from("127.0.0.22") as other:  # a fresh address: the account is still locked
        locked = other.post(url, json=right)
        assert locked.status_code == 429 and "fatima" in locked.json()["detail"]
        omar = {"username": "omar", "password": site.passwords["omar"]}
        assert other.post(url, json=omar).status_code == 200  # other people sign in

    sources = {
        e["source"]
        for e in admin.list_audit(action="auth.sign_in", limit=500)
        if e["target"] == "user:fatima"
    }
    assert sources == {"127.0.0.21", "127.0.0.22"}  # never a forged 10.9.x.y
