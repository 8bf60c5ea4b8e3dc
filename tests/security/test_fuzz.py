"""Property-based fuzzing of the hub's OpenAPI document (schemathesis), as every kind of
caller, against a real hub process: no generated request may get a 5xx.

Run as each role (admin, ML engineer, approver, auditor, worker) and as an enrolled
agent, so that each operation's logic is reached by someone allowed to call it, not only
its 401/403. The examples are derandomized and bounded per operation, so the run is the
same every time and fits CI. A few operations that would end the fuzzing callers' own
sessions (sign-out, disabling users, revoking agents) are left out.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from agent.identity import credentials, load_identity
from appliance.cli.demo.processes import ServiceProcess
from appliance.cli.demo.site import Site
from appliance.client.hub import HubClient
from appliance.wire.fleet import NewInferenceKey
from tests.harness.site import MODEL, publish, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLES = 10
"""Generated cases per operation and caller."""
FIRST = 2
"""Cases tried first: a caller refused (401/403) on each of these, as a role's guard refuses
before any handler reads the request, is not sent the ``EXAMPLES`` that follow."""
REFUSED = {401, 403}
LEFT_OUT = {
    ("POST", "/api/v1/auth/sign-out"),
    ("POST", "/api/v1/users/{user_id}/disable"),
    ("POST", "/api/v1/agents/{agent_id}/revoke"),
}
CALLERS = ("admin", "alice", "omar", "sara", "gpu01")


def _bearer(client: HubClient) -> dict[str, str]:
    assert client.credentials is not None
    return {"authorization": f"Bearer {client.credentials.bearer()}"}


def _fuzz(
    operation: Any,
    base_url: str,
    caller: str,
    client: HubClient | None,
    statuses: dict[str, Counter[int]],
    server_errors: list[str],
    *,
    path_parameters: dict[str, Any] | None = None,
    key: str | None = None,
) -> None:
    """``EXAMPLES`` generated cases of one operation, sent as ``caller`` (a hub client's
    token, or an agent's inference ``key``); ``path_parameters`` pins those it names.
    ``FIRST`` cases go first; the ``EXAMPLES`` only when the caller got past 401/403 on one
    of them. Hypothesis draws the two runs apart (a derandomized run of 10 does not begin
    with the run of 2), so a caller let in gets ``FIRST + EXAMPLES`` cases."""

    def cases(examples: int) -> Counter[int]:
        seen: Counter[int] = Counter()

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def fuzz(case: Any) -> None:
            for name, value in (path_parameters or {}).items():
                if name in (case.path_parameters or {}):
                    case.path_parameters[name] = value
            headers = (
                _bearer(client) if client else {"authorization": f"Bearer {key}"} if key else {}
            )
            response = case.call(base_url=base_url, headers=headers, timeout=30)
            seen[response.status_code] += 1
            if response.status_code >= 500:
                server_errors.append(
                    f"{caller}: {case.method} {case.formatted_path} -> "
                    f"{response.status_code} {response.text[:200]}"
                )

        fuzz()
        return seen

    seen = cases(FIRST)
    if not set(seen) <= REFUSED:
        seen = cases(EXAMPLES)
    statuses[f"{operation.method.upper()} {operation.path}"].update(seen)


def test_no_generated_request_gets_a_server_error_from_an_agent(
    admin: HubClient, engineer: HubClient, approver: HubClient, start_test_agent: Any
) -> None:
    """First in this module: the hub fuzzing below spends the sign-in and enrolment rate
    limit of this address, and an agent enrolled after it would get 429.

    The agent's own document (``/schema/openapi.json``: the Open Inference Protocol's
    routes, feedback, status, metrics), fuzzed anonymously and with an inference key, on
    any model name and on the model it serves."""
    version = publish(engineer, approver).version
    agent = start_test_agent("fuzz-edge", open_data_plane=False)
    key = admin.create_inference_key(
        NewInferenceKey(name="fuzz-app", zone="ae-dxb", models=[MODEL], days=1)
    ).key
    assert key is not None
    ready = f"{agent.url}/v2/models/{MODEL}/ready"
    auth = {"authorization": f"Bearer {key}"}
    wait_until("the key and model", lambda: httpx.get(ready, headers=auth).status_code == 200)
    document = httpx.get(f"{agent.url}/schema/openapi.json", timeout=30)
    assert document.status_code == 200
    schema = schemathesis.openapi.from_dict(document.json())
    operations = [result.ok() for result in schema.get_all_operations()]
    names = {op.definition.raw["operationId"] for op in operations}
    assert {"modelInfer", "modelVersionInfer", "modelFeedback", "agentStatus"} <= names

    server_errors: list[str] = []
    statuses: dict[str, Counter[int]] = defaultdict(Counter)
    served = {"name": MODEL, "version": version}
    for operation in operations:
        _fuzz(operation, agent.url, "anonymous", None, statuses, server_errors)
        _fuzz(operation, agent.url, "key", None, statuses, server_errors, key=key)
        _fuzz(
            operation,
            agent.url,
            "key",
            None,
            statuses,
            server_errors,
            key=key,
            path_parameters=served,
        )
    reached = [op for op, seen in statuses.items() if set(seen) - {401, 403, 404}]
    print(
        f"fuzzed {len(operations)} agent operations: "
        f"{sum(sum(seen.values()) for seen in statuses.values())} requests, "
        f"{len(reached)} reached past 401/403/404, {len(server_errors)} server errors"
    )
    assert server_errors == [], "\n".join(server_errors)
    assert len(reached) >= len(operations) * 0.8, sorted(set(statuses) - set(reached))
    assert "Traceback" not in agent.log_path.read_text(errors="replace")


def test_no_generated_request_gets_a_server_error(
    site: Site,
    hub: ServiceProcess,
    admin: HubClient,
    engineer: HubClient,
    approver: HubClient,
    start_test_agent: Any,
    workdir: Path,
) -> None:
    publish(engineer, approver)
    agent = start_test_agent("fuzz-agent")
    assert agent.url
    document = httpx.get(f"{hub.url}/schema/openapi.json", headers=_bearer(admin), timeout=30)
    assert document.status_code == 200
    schema = schemathesis.openapi.from_dict(document.json())
    operations = [
        result.ok()
        for result in schema.get_all_operations()
        if (result.ok().method.upper(), result.ok().path) not in LEFT_OUT
    ]
    assert len(operations) > 60

    server_errors: list[str] = []
    statuses: dict[str, Counter[int]] = defaultdict(Counter)
    clients = {name: site.client(hub.url, name) for name in CALLERS}
    identity = load_identity(workdir / "fuzz-agent")
    assert identity is not None
    clients["agent"] = HubClient(hub.url, credentials=credentials(workdir / "fuzz-agent", identity))
    try:
        for caller, client in clients.items():
            for operation in operations:
                _fuzz(operation, hub.url, caller, client, statuses, server_errors)
    finally:
        for client in clients.values():
            client.close()

    reached = [op for op, seen in statuses.items() if set(seen) - {401, 403}]
    sent = sum(sum(seen.values()) for seen in statuses.values())
    print(
        f"fuzzed {len(operations)} operations as {len(clients)} callers: {sent} requests, "
        f"{len(reached)} operations reached past 401/403, {len(server_errors)} server errors"
    )
    assert server_errors == [], "\n".join(server_errors)
    assert len(reached) >= len(operations) * 0.8, sorted(set(statuses) - set(reached))
    assert "Traceback" not in hub.log_path.read_text(errors="replace")
