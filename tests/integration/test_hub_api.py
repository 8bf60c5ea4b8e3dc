"""The hub's HTTP API as clients see it: uploads, stages, bundles, errors, OpenAPI."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator

import httpx
import pytest

from appliance.demo.processes import hub_process
from appliance.errors import HubRejectedError
from appliance.hub_client import HubClient
from tests.conftest import POSTGRES_URL, make_tiny_onnx

pytestmark = pytest.mark.integration


def test_illegal_stage_change_is_409_with_a_reason(hub):
    client = HubClient(hub.url)
    info = client.upload_model("stages", make_tiny_onnx())
    response = httpx.post(
        f"{hub.url}/api/v1/models/stages/versions/{info.version}/stage",
        json={"stage": "production"},
        timeout=10,
    )
    assert response.status_code == 409
    body = response.json()
    assert "cannot move from candidate to production" in body["detail"]
    assert "staging" in body["hint"]


def test_upload_errors_name_what_was_wrong(hub):
    url = f"{hub.url}/api/v1/models/bad/versions"
    not_onnx = httpx.post(url, files={"model": ("m.onnx", b"definitely not onnx")}, timeout=30)
    assert not_onnx.status_code == 400 and not_onnx.json()["detail"].startswith("model:")
    no_file = httpx.post(url, files={"other": ("x", b"x")}, timeout=30)
    assert no_file.status_code == 400 and "'model'" in no_file.json()["detail"]
    bad_meta = httpx.post(
        url, files={"model": ("m.onnx", make_tiny_onnx())}, data={"metadata": "{oops"}, timeout=30
    )
    assert bad_meta.status_code == 400 and "metadata" in bad_meta.json()["detail"]
    bad_name = httpx.post(
        f"{hub.url}/api/v1/models/Bad%20Name/versions",
        files={"model": ("m.onnx", make_tiny_onnx())},
        timeout=30,
    )
    assert bad_name.status_code == 400 and "name" in bad_name.json()["detail"]
    assert HubClient(hub.url).list_models() == [] or all(
        m.name != "bad" for m in HubClient(hub.url).list_models()
    )


def test_unknown_model_and_version_are_404(hub):
    assert httpx.get(f"{hub.url}/api/v1/models/ghost", timeout=5).status_code == 404
    assert (
        httpx.get(f"{hub.url}/api/v1/models/ghost/versions/1/bundle", timeout=5).status_code == 404
    )
    with pytest.raises(HubRejectedError) as err:
        HubClient(hub.url).change_stage("ghost", 1, "staging")
    assert err.value.status_code == 404


def test_bundle_download_matches_the_recorded_hash(hub):
    info = HubClient(hub.url).upload_model("dl", make_tiny_onnx())
    response = httpx.get(f"{hub.url}/api/v1/models/dl/versions/{info.version}/bundle", timeout=10)
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == info.bundle_sha256
    assert response.headers["x-bundle-sha256"] == info.bundle_sha256


def test_openapi_document_lists_the_operations(hub):
    doc = httpx.get(f"{hub.url}/schema/openapi.json", timeout=10).json()
    operations = {op["operationId"] for path in doc["paths"].values() for op in path.values()}
    assert {
        "uploadModelVersion",
        "changeModelVersionStage",
        "downloadModelBundle",
        "registerAgent",
        "agentHeartbeat",
        "agentAssignments",
    } <= operations


@pytest.fixture
def postgres_hub(tmp_path) -> Iterator[str]:
    import psycopg

    schema = f"hub_{secrets.token_hex(4)}"
    plain = POSTGRES_URL.replace("postgresql+psycopg", "postgresql")
    try:
        conn = psycopg.connect(plain, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    conn.execute(f"CREATE SCHEMA {schema}")
    proc = hub_process(
        tmp_path / "pghub", database_url=f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    )
    proc.start()
    try:
        proc.wait_healthy()
        yield proc.url
    finally:
        proc.stop()
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()


def test_hub_runs_its_registry_on_postgresql(postgres_hub):
    client = HubClient(postgres_hub)
    first = client.upload_model("pg", make_tiny_onnx())
    second = client.upload_model("pg", make_tiny_onnx())
    assert (first.version, second.version) == (1, 2)
    client.change_stage("pg", 2, "staging")
    assert client.change_stage("pg", 2, "production").stage == "production"
    assert client.list_models()[0].production_version == 2
