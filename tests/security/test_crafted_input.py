"""Issue 14, finding 10: crafted input answered 500 with a traceback in the log each time.

Each is now a 4xx with the usual error body, and neither the hub's nor the agent's log
holds a traceback: a token whose ``kid`` is ``agent:²`` or ``agent:`` + 30 digits, JSON
100,000 levels deep (sign-in, enrolment, inference, multipart metadata), ids beyond
int64 in hub paths, a version ``²`` on an agent, an offline export of 3,000,000 days.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.cli.demo.processes import ServiceProcess
from appliance.client.hub import HubClient
from tests.harness.models import make_tiny_onnx
from tests.harness.site import MODEL, publish, serving_version, wait_until

pytestmark = pytest.mark.integration

DEEP = b"[" * 100_000 + b"]" * 100_000


def _bearer(client: HubClient) -> dict[str, str]:
    assert client.credentials is not None
    return {"authorization": f"Bearer {client.credentials.bearer()}"}


def _forged_agent_token(kid: str) -> str:
    now = int(time.time())
    claims = {"iss": kid, "sub": kid, "aud": "appliance", "iat": now, "nbf": now, "exp": now + 60}
    return jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": kid})


def _is_error(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    body: dict[str, Any] = response.json()
    return body


def test_crafted_requests_get_a_4xx_and_leave_no_traceback(
    hub: ServiceProcess,
    admin: HubClient,
    engineer: HubClient,
    approver: HubClient,
    start_agent: Any,
) -> None:
    publish(engineer, approver)
    agent = start_agent("crafted")
    wait_until("the model on the agent", lambda: serving_version(agent) is not None)

    for kid in ("agent:²", "agent:" + "9" * 30, "agent:٣", "agent:"):
        answer = httpx.get(
            f"{hub.url}/api/v1/models",
            headers={"authorization": f"Bearer {_forged_agent_token(kid)}"},
            timeout=10,
        )
        assert _is_error(answer, 401)["error"] == "AuthenticationError"

    json_headers = {"content-type": "application/json"}
    for path in ("/api/v1/auth/sign-in", "/api/v1/agents/enrol"):
        deep = httpx.post(f"{hub.url}{path}", content=DEEP, headers=json_headers, timeout=30)
        _is_error(deep, 400, 413)
    deep_metadata = httpx.post(
        f"{hub.url}/api/v1/models/deep/versions",
        files={"model": ("m.onnx", make_tiny_onnx())},
        data={"metadata": DEEP.decode()},
        headers=_bearer(engineer),
        timeout=30,
    )
    assert "nests too deeply" in _is_error(deep_metadata, 400)["detail"]
    deep_data = b'{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": '
    for body in (DEEP, deep_data + DEEP + b"}]}"):
        deep_infer = httpx.post(
            f"{agent.url}/v2/models/{MODEL}/infer", content=body, headers=json_headers, timeout=30
        )
        _is_error(deep_infer, 400, 422)

    for path in (
        "/api/v1/agents/99999999999999999999",
        "/api/v1/rollouts/9223372036854775808",
        "/api/v1/training/jobs/%D9%A3",
        f"/api/v1/models/{MODEL}/versions/1%5F0",
    ):
        beyond = httpx.get(f"{hub.url}{path}", headers=_bearer(admin), timeout=10)
        assert _is_error(beyond, 404)["error"] == "NotFoundError"
    squared = httpx.post(
        f"{agent.url}/v2/models/{MODEL}/versions/%C2%B2/infer", json={}, timeout=10
    )
    _is_error(squared, 404)

    century = httpx.post(
        f"{hub.url}/api/v1/updates/export",
        json={"zone": "ae-dxb", "group": "default", "days": 3_000_000},
        headers=_bearer(admin),
        timeout=30,
    )
    assert "days" in _is_error(century, 422)["detail"]

    for proc in (hub, agent):
        assert "Traceback" not in proc.log_path.read_text(errors="replace"), proc.name
