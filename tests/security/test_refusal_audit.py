"""Issue 14, finding 7: every refusal is audited, however long the path that was refused.

Leading zeros make a 600-character user id valid, and an anonymous client can send any
path; the audit target is cut to its column's 512 characters instead of failing the
audit write (which lost the row and logged a traceback per request).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from appliance.cli.demo.processes import ServiceProcess
from appliance.client.hub import HubClient

pytestmark = pytest.mark.integration


def _refused(admin: HubClient, after: int) -> list[dict[str, Any]]:
    return admin.list_audit(action="access.refused", after=after, limit=500)


def _last_seq(admin: HubClient) -> int:
    entries = admin.list_audit(after=0, limit=1)
    seq = 0
    while entries:
        seq = entries[-1]["seq"]
        entries = admin.list_audit(after=seq, limit=500)
    return seq


def test_refusals_of_long_paths_are_audited_with_the_target_cut(
    hub: ServiceProcess, admin: HubClient, engineer: HubClient
) -> None:
    before = _last_seq(admin)
    assert engineer.credentials is not None
    long_id = "0" * 600 + "1"
    forbidden = httpx.post(
        f"{hub.url}/api/v1/users/{long_id}/disable",
        headers={"authorization": f"Bearer {engineer.credentials.bearer()}"},
        timeout=10,
    )
    assert forbidden.status_code == 403
    anonymous = [
        httpx.get(f"{hub.url}/api/v1/models/{'x' * 700}-{i}", timeout=10).status_code
        for i in range(20)
    ]
    assert anonymous == [401] * 20
    refused = _refused(admin, before)
    assert len(refused) == 21
    by_alice = [e for e in refused if e["actor"] == "user:alice"]
    assert len(by_alice) == 1 and by_alice[0]["detail"]["status"] == 403
    assert all(len(e["target"]) == 512 and e["target"].endswith("…") for e in refused)
    assert admin.verify_audit()["ok"] is True
    assert "Traceback" not in hub.log_path.read_text(errors="replace")
