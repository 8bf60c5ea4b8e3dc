"""Issue 16, item 7: ``--log-format json`` gives one JSON object a line, and one request
can be followed by its id: the hub and the agent answer with it (``X-Request-ID``) and log
it with the actor, model and version, and a hub client sends its caller's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from appliance import logs
from appliance.cli.demo.processes import ServiceProcess, hub_process, wait_for
from appliance.cli.demo.site import Site, bootstrap_site
from appliance.client.hub import HubClient
from appliance.wire.fleet import NewInferenceKey
from tests.harness.site import MODEL, publish, wait_until


@pytest.fixture(scope="module")
def json_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, ServiceProcess]]:
    site = bootstrap_site(tmp_path_factory.mktemp("logs"), tls=False)
    hub = hub_process(site.hub_dir, extra_args=("--log-format", "json"))
    hub.start()
    try:
        hub.wait_healthy()
        yield site, hub
    finally:
        hub.stop()


def _lines(service: ServiceProcess) -> list[dict[str, Any]]:
    """Every line the service wrote, each of which must be a JSON object."""
    return [json.loads(line) for line in service.log_path.read_text().splitlines() if line]


def _line_for(
    service: ServiceProcess, request_id: str, logger: str | None = None
) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        return next(
            (
                n
                for n in _lines(service)
                if n.get("request_id") == request_id and logger in (None, n["logger"])
            ),
            None,
        )

    return wait_for(f"{service.name}'s line for {request_id}", found, timeout=30)


def test_a_client_request_is_logged_by_the_hub_under_the_callers_id(json_hub) -> None:  # type: ignore[no-untyped-def]
    site, hub = json_hub
    with site.client(hub.url, "admin") as admin:
        token = logs.request_id.set("trace-from-the-caller-1")
        try:
            admin.list_models()
        finally:
            logs.request_id.reset(token)

    line = _line_for(hub, "trace-from-the-caller-1")

    assert line["logger"] == "hub.access" and line["level"] == "INFO"
    assert line["message"].startswith("GET /api/v1/models 200 ")
    assert line["actor"] == "user:admin"
    assert line["time"].endswith("+00:00")


def test_the_answer_carries_the_id_and_a_model_request_names_model_and_version(json_hub) -> None:  # type: ignore[no-untyped-def]
    site, hub = json_hub
    with site.client(hub.url, "admin") as admin:
        headers = {"x-request-id": "trace-2", **admin._auth_headers()}
        answer = httpx.get(f"{hub.url}/api/v1/models/iris/versions/3", headers=headers)

    assert answer.status_code == 404 and answer.headers["x-request-id"] == "trace-2"
    line = _line_for(hub, "trace-2")
    assert (line["model"], line["version"]) == ("iris", "3")
    assert " 404 " in line["message"]


def test_an_id_a_caller_could_inject_into_logs_is_replaced(json_hub) -> None:  # type: ignore[no-untyped-def]
    _site, hub = json_hub
    crafted = 'x" ,"level":"CRITICAL'
    answer = httpx.get(f"{hub.url}/health", headers={"x-request-id": crafted})

    given = answer.headers["x-request-id"]
    assert given != crafted and len(given) == 32  # a fresh id
    line = _line_for(hub, given)
    assert line["level"] == "INFO"
    assert all(isinstance(n, dict) for n in _lines(hub))  # startup lines are JSON too


def test_the_agent_logs_each_inference_with_its_id_caller_model_and_version(
    admin: HubClient, engineer: HubClient, approver: HubClient, start_agent: Any
) -> None:
    version = publish(engineer, approver).version
    agent = start_agent("json-agent", open_data_plane=False, env={"APPLIANCE_LOG_FORMAT": "json"})
    key = admin.create_inference_key(
        NewInferenceKey(name="ledger-app", zone="ae-dxb", models=[MODEL], days=1)
    )
    secret = key.key
    assert secret is not None
    body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1] * 4}]}

    def infer(request_id: str, secret: str) -> httpx.Response:
        return httpx.post(
            f"{agent.url}/v2/models/{MODEL}/versions/{version}/infer",
            json=body,
            headers={"authorization": f"Bearer {secret}", "x-request-id": request_id},
            timeout=10,
        )

    wait_until("the model and key at the agent", lambda: infer("warm-up", secret).is_success)
    answer = infer("clinic-42", secret)
    refused = infer("clinic-43", secret[:-1] + "x")

    assert answer.status_code == 200 and answer.headers["x-request-id"] == "clinic-42"
    line = _line_for(agent, "clinic-42", "agent.access")
    assert line["message"].startswith(f"POST /v2/models/{MODEL}/versions/{version}/infer 200 ")
    assert line["actor"] == f"inference-key:{key.key_id}"
    assert (line["model"], line["version"]) == (MODEL, str(version))
    assert refused.status_code == 401 and refused.headers["x-request-id"] == "clinic-43"
    assert " 401 " in _line_for(agent, "clinic-43", "agent.access")["message"]
    assert all(isinstance(n, dict) for n in _lines(agent))  # every line is JSON
