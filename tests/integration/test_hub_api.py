"""The hub's HTTP API as clients see it: uploads, stages, bundles, errors, OpenAPI."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator

import httpx
import pytest

from appliance.cli.demo.processes import hub_process
from appliance.cli.demo.site import bootstrap_site
from appliance.errors import HubRejectedError
from tests.conftest import POSTGRES_URL
from tests.harness.models import make_tiny_onnx

pytestmark = pytest.mark.integration


def auth(client) -> dict[str, str]:
    return {"authorization": f"Bearer {client.credentials.bearer()}"}


def test_illegal_stage_change_is_409_with_a_reason(hub, engineer, approver):
    info = engineer.upload_model("stages", make_tiny_onnx())
    response = httpx.post(
        f"{hub.url}/api/v1/models/stages/versions/{info.version}/stage",
        json={"stage": "production"},
        headers=auth(approver),
        timeout=10,
    )
    assert response.status_code == 409
    body = response.json()
    assert "cannot move from candidate to production" in body["detail"]
    assert "staging" in body["hint"]


def test_upload_errors_name_what_was_wrong(hub, engineer):
    url = f"{hub.url}/api/v1/models/bad/versions"
    headers = auth(engineer)
    not_onnx = httpx.post(
        url, files={"model": ("m.onnx", b"definitely not onnx")}, headers=headers, timeout=30
    )
    assert not_onnx.status_code == 400 and not_onnx.json()["detail"].startswith("model:")
    no_file = httpx.post(url, files={"other": ("x", b"x")}, headers=headers, timeout=30)
    assert no_file.status_code == 400 and "'model'" in no_file.json()["detail"]
    bad_meta = httpx.post(
        url,
        files={"model": ("m.onnx", make_tiny_onnx())},
        data={"metadata": "{oops"},
        headers=headers,
        timeout=30,
    )
    assert bad_meta.status_code == 400 and "metadata" in bad_meta.json()["detail"]
    bad_zone = httpx.post(
        url,
        files={"model": ("m.onnx", make_tiny_onnx())},
        data={"metadata": '{"zones": ["mars-1"]}'},
        headers=headers,
        timeout=30,
    )
    assert bad_zone.status_code == 400 and "mars-1" in bad_zone.json()["detail"]
    bad_name = httpx.post(
        f"{hub.url}/api/v1/models/Bad%20Name/versions",
        files={"model": ("m.onnx", make_tiny_onnx())},
        headers=headers,
        timeout=30,
    )
    assert bad_name.status_code == 400 and "name" in bad_name.json()["detail"]
    assert all(m.name != "bad" for m in engineer.list_models())


def test_unknown_model_and_version_are_404(hub, engineer):
    headers = auth(engineer)
    assert (
        httpx.get(f"{hub.url}/api/v1/models/ghost", headers=headers, timeout=5).status_code == 404
    )
    bundle = httpx.get(
        f"{hub.url}/api/v1/models/ghost/versions/1/bundle", headers=headers, timeout=5
    )
    assert bundle.status_code == 404
    with pytest.raises(HubRejectedError) as err:
        engineer.change_stage("ghost", 1, "staging")
    assert err.value.status_code == 404


def test_bundle_download_matches_the_recorded_hash(hub, engineer):
    info = engineer.upload_model("dl", make_tiny_onnx())
    response = httpx.get(
        f"{hub.url}/api/v1/models/dl/versions/{info.version}/bundle",
        headers=auth(engineer),
        timeout=10,
    )
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == info.bundle_sha256
    assert response.headers["x-bundle-sha256"] == info.bundle_sha256


def test_openapi_document_lists_the_operations(hub, engineer):
    doc = httpx.get(f"{hub.url}/schema/openapi.json", headers=auth(engineer), timeout=10).json()
    operations = {op["operationId"] for path in doc["paths"].values() for op in path.values()}
    assert {
        "uploadModelVersion",
        "changeModelVersionStage",
        "downloadModelBundle",
        "enrolAgent",
        "agentHeartbeat",
        "agentAssignments",
        "signIn",
        "verifyAuditLog",
    } <= operations


@pytest.fixture
def postgres_hub(tmp_path, monkeypatch) -> Iterator[tuple[str, object]]:
    import psycopg

    schema = f"hub_{secrets.token_hex(4)}"
    plain = POSTGRES_URL.replace("postgresql+psycopg", "postgresql")
    try:
        conn = psycopg.connect(plain, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    conn.execute(f"CREATE SCHEMA {schema}")
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    monkeypatch.setenv("APPLIANCE_DATABASE_URL", url)  # the bootstrap writes users there too
    site = bootstrap_site(tmp_path, tls=False)
    proc = hub_process(site.hub_dir, database_url=url)
    proc.start()
    try:
        proc.wait_healthy()
        yield proc.url, site
    finally:
        proc.stop()
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()


def test_hub_runs_on_postgresql(postgres_hub):
    url, site = postgres_hub
    engineer, approver = site.client(url, "alice"), site.client(url, "omar")
    first = engineer.upload_model("pg", make_tiny_onnx())
    second = engineer.upload_model("pg", make_tiny_onnx())
    assert (first.version, second.version) == (1, 2)
    engineer.change_stage("pg", 2, "staging")
    assert approver.change_stage("pg", 2, "production").stage == "production"
    assert engineer.list_models()[0].production_version == 2
    assert site.client(url, "sara").verify_audit()["ok"] is True


def test_lists_page_by_name_and_by_id(hub, engineer, admin):
    for name in ("page-a", "page-b"):
        engineer.upload_model(name, make_tiny_onnx())
    names, after = [], ""
    while page := engineer.list_models(after=after, limit=1):
        names.append(page[0].name)
        after = page[0].name
    assert names == sorted(names) and {"page-a", "page-b"} <= set(names)
    assert admin.list_agents(after=10**6) == []
