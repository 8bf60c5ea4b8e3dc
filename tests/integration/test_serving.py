"""An agent syncs a signed model from a real hub and serves it over KServe v2."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from tests.harness.site import MODEL, publish, serving_version, wait_until

pytestmark = pytest.mark.integration

ROW = [0.5, -1.0, 2.0, 0.25]


def _infer(url: str, body: object, path: str = f"/v2/models/{MODEL}/infer") -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=10.0)


def _body(
    data: object = ROW, shape: object = (1, 4), datatype: str = "FP32", name: str = "input"
) -> dict[str, object]:
    return {"inputs": [{"name": name, "shape": list(shape), "datatype": datatype, "data": data}]}  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def serving(engineer, approver, start_agent):
    agent = start_agent()
    publish(engineer, approver)
    wait_until("agent to serve v1", lambda: serving_version(agent) == "1")
    return agent


def test_agent_serves_the_published_model_with_the_expected_outputs(serving, tiny_onnx):
    import onnxruntime as ort

    expected = ort.InferenceSession(tiny_onnx).run(None, {"input": np.array([ROW], np.float32)})[0]
    response = _infer(serving.url, {"id": "req-7", **_body()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == MODEL
    assert body["model_version"] == "1"
    assert body["id"] == "req-7"
    out = body["outputs"][0]
    assert out["name"] == "probabilities" and out["datatype"] == "FP32" and out["shape"] == [1, 2]
    np.testing.assert_allclose(out["data"], expected.reshape(-1), rtol=1e-5)


def test_nested_data_and_batches_and_versioned_infer(serving):
    batch = [ROW, ROW[::-1], ROW]
    response = _infer(serving.url, _body(batch, (3, 4)), f"/v2/models/{MODEL}/versions/1/infer")
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["shape"] == [3, 2]


def test_protocol_metadata_and_health_endpoints(serving):
    get = lambda path: httpx.get(serving.url + path, timeout=5.0)  # noqa: E731
    assert get("/v2").json()["name"] == "appliance-agent"
    assert get("/v2/health/live").json() == {"live": True}
    assert get("/v2/health/ready").json() == {"ready": True}
    meta = get(f"/v2/models/{MODEL}").json()
    assert meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}]
    assert get(f"/v2/models/{MODEL}/ready").status_code == 200
    assert get(f"/v2/models/{MODEL}/versions/1").json()["name"] == MODEL
    assert get(f"/v2/models/{MODEL}/versions/1/ready").status_code == 200


def test_agent_reports_its_model_to_the_hub(serving, admin):
    def reported():
        agents = admin.list_agents()
        return agents and agents[0].models and agents[0].models[0].version == 1

    wait_until("heartbeat with v1", reported)
    agent = admin.list_agents()[0]
    assert (agent.name, agent.zone, agent.health) == ("agent-1", "ae-dxb", "ok")


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (_body(shape=(1, 3), data=ROW[:3]), 400, "inputs[0].shape"),
        (_body(shape=(4,)), 400, "inputs[0].shape"),
        (_body(datatype="INT64", data=[1, 2, 3, 4]), 400, "inputs[0].datatype"),
        (_body(data=ROW[:3]), 400, "inputs[0].data"),
        (_body(data=["a", "b", "c", "d"]), 400, "inputs[0].data"),
        (_body(name="features"), 400, "inputs[0].name"),
        ({"inputs": []}, 400, "missing input"),
        ({"input": []}, 422, "inputs"),
        ({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32"}]}, 422, "data"),
    ],
    ids=[
        "wrong-shape",
        "wrong-rank",
        "wrong-datatype",
        "too-few-elements",
        "not-numbers",
        "unknown-input",
        "missing-input",
        "no-inputs-field",
        "no-data-field",
    ],
)
def test_bad_requests_get_a_clear_error_naming_the_field(serving, body, status, fragment):
    response = _infer(serving.url, body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]


def test_non_json_empty_and_oversized_bodies_are_refused(serving):
    url = f"{serving.url}/v2/models/{MODEL}/infer"
    not_json = httpx.post(url, content=b"{not json", timeout=5)
    assert not_json.status_code == 400 and "JSON" in not_json.json()["error"]
    empty = httpx.post(url, content=b"", timeout=5)
    assert empty.status_code == 400 and "empty" in empty.json()["error"]
    huge = json.dumps(_body(data=[0.0] * (5 * 1024 * 1024), shape=(1, 5 * 1024 * 1024)))
    oversized = httpx.post(url, content=huge.encode(), timeout=30)
    assert oversized.status_code == 413
    assert _infer(serving.url, _body()).status_code == 200  # still serving


def test_unknown_model_or_version_is_404(serving):
    assert _infer(serving.url, _body(), "/v2/models/nope/infer").status_code == 404
    missing = _infer(serving.url, _body(), f"/v2/models/{MODEL}/versions/9/infer")
    assert missing.status_code == 404
    assert "version 9" in missing.json()["error"]
    assert httpx.get(f"{serving.url}/v2/models/nope", timeout=5).status_code == 404


def test_residency_report_records_the_model_going_to_the_agent(serving, site, tmp_path):
    import csv
    import subprocess
    import sys

    out = tmp_path / "processing.csv"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "appliance",
            "residency",
            "report",
            "--data-dir",
            str(site.hub_dir),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out.open()))
    sent = [r for r in rows if r["target"].startswith(f"model:{MODEL}/1 to agent:agent-1")]
    assert sent, rows
    assert (sent[0]["flow"], sent[0]["data_zones"], sent[0]["to_zone"], sent[0]["outcome"]) == (
        "deploy",
        "ae-dxb",
        "ae-dxb",
        "allowed",
    )
    assert sent[0]["rule"] == "deploy.ae-dxb"


def test_stock_clients_read_the_repository_index_and_statistics(serving):
    """Issue 15: ``POST /v2/repository/index`` and ``/v2/models/{m}/stats`` were 404."""
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(serving.url.removeprefix("http://"))
    extensions = client.get_server_metadata()["extensions"]
    assert {"binary_tensor_data", "model_repository", "statistics"} <= set(extensions)
    assert {"name": MODEL, "version": "1", "state": "READY", "reason": ""} in (
        client.get_model_repository_index()
    )
    before = client.get_inference_statistics(MODEL)["model_stats"][0]["inference_stats"]
    assert _infer(serving.url, _body()).status_code == 200
    assert _infer(serving.url, _body(shape=(4,))).status_code == 400
    (stats,) = client.get_inference_statistics(MODEL, "1")["model_stats"]
    assert (stats["name"], stats["version"]) == (MODEL, "1")
    after = stats["inference_stats"]
    assert after["success"]["count"] == before["success"]["count"] + 1
    assert after["fail"]["count"] == before["fail"]["count"] + 1
    assert after["success"]["ns"] > before["success"]["ns"] and stats["last_inference"] > 0
    assert client.get_inference_statistics()["model_stats"]  # every model
    with pytest.raises(InferenceServerException, match="not loaded"):
        client.get_inference_statistics("no-such-model")
