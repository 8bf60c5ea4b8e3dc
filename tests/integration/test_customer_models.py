"""Issue 15: the models customers bring, imported through a real hub and served by a real
agent, answer exactly as ONNX Runtime does on the same file."""

from __future__ import annotations

import io
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton

from appliance.client.hub import HubClient
from appliance.errors import HubRejectedError
from tests.harness.models import (
    bert_feed,
    make_linear_regressor_onnx,
    make_picky_onnx,
    make_tiny_bert,
)
from tests.harness.site import serving_version, wait_until

pytestmark = pytest.mark.integration


def _wire(feed: dict[str, np.ndarray]) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": k, "shape": list(v.shape), "datatype": "INT64", "data": v.ravel().tolist()}
            for k, v in feed.items()
        ]
    }


@pytest.mark.parametrize("inputs", [3, 2])
def test_a_multi_input_transformer_imports_and_answers_as_onnx_runtime_does(
    inputs: int, engineer: HubClient, approver: HubClient, start_agent: Any
) -> None:
    """A 3-input BERT answered 500 at import (random probe ids out of range); a 2-input one
    imported but agents refused it (NaN outputs against a NaN-blind comparison)."""
    model = make_tiny_bert(inputs)
    name = f"bert{inputs}"
    version = engineer.upload_model(name, model).version
    engineer.change_stage(name, version, "staging")
    approver.change_stage(name, version, "production")
    agent = start_agent(f"nlp-{inputs}")
    wait_until("the transformer", lambda: serving_version(agent, name) == str(version), 60)
    direct = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    for batch, seq in ((1, 16), (2, 64), (4, 128)):
        feed = bert_feed(batch, seq, inputs, seed=seq)
        answer = httpx.post(f"{agent.url}/v2/models/{name}/infer", json=_wire(feed), timeout=30)
        assert answer.status_code == 200, answer.text
        (logits,) = answer.json()["outputs"]
        got = np.asarray(logits["data"], np.float32).reshape(logits["shape"])
        np.testing.assert_allclose(got, direct.run(["logits"], feed)[0], rtol=1e-5, atol=1e-6)


def test_a_model_that_cannot_run_on_its_probes_is_422_and_imports_with_samples(
    engineer: HubClient, approver: HubClient, start_agent: Any
) -> None:
    with pytest.raises(HubRejectedError) as refused:
        engineer.upload_model("picky", make_picky_onnx())
    assert refused.value.status_code == 422
    assert "could not run it on probe inputs" in str(refused.value)
    assert "--sample" in (refused.value.hint or "")
    buffer = io.BytesIO()
    np.savez(buffer, ids=np.array([-5, -5, -5]))
    version = engineer.upload_model("picky", make_picky_onnx(), sample=buffer.getvalue()).version
    engineer.change_stage("picky", version, "staging")
    approver.change_stage("picky", version, "production")
    agent = start_agent("picky-edge")
    wait_until("the picky model", lambda: serving_version(agent, "picky") == str(version), 60)
    body = {"inputs": [{"name": "ids", "shape": [2], "datatype": "INT64", "data": [-5, -5]}]}
    answer = httpx.post(f"{agent.url}/v2/models/picky/infer", json=body, timeout=30)
    assert answer.json()["outputs"][0]["data"] == [0.25, 0.75, 0.25, 0.75]


def test_a_model_openvino_cannot_run_is_served_by_onnx_runtime_and_says_why(
    engineer: HubClient, approver: HubClient, start_agent: Any
) -> None:
    """A scikit-learn style ``ai.onnx.ml`` regressor: OpenVINO cannot convert it, so the
    bundle offers ONNX Runtime only, says why, and agents on ``auto`` serve it."""
    with pytest.raises(HubRejectedError) as loose:
        engineer.upload_model("linear", make_linear_regressor_onnx(), tolerance={"atol": 2.0})
    assert loose.value.status_code == 400 and "tolerance" in str(loose.value)
    info = engineer.upload_model(
        "linear", make_linear_regressor_onnx(), tolerance={"atol": 1e-6, "rtol": 1e-5}
    )
    assert info.runtimes == ["onnxruntime"]
    assert "LinearRegressor" in info.runtime_notes["openvino"]
    assert info.tolerance == {"atol": 1e-6, "rtol": 1e-5}
    engineer.change_stage("linear", info.version, "staging")
    approver.change_stage("linear", info.version, "production")
    agent = start_agent("linear-edge", runtime="auto")
    wait_until("the regressor", lambda: serving_version(agent, "linear") == str(info.version), 60)
    body = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1, 1, 1, 1]}]}
    answer = httpx.post(f"{agent.url}/v2/models/linear/infer", json=body, timeout=30).json()
    assert answer["outputs"][0]["data"] == pytest.approx([1.85])


def test_a_stock_triton_client_with_its_defaults_is_answered_in_binary(
    engineer: HubClient, approver: HubClient, start_agent: Any
) -> None:
    """``tritonclient.http`` sends binary tensor data and asks for binary outputs by
    default; the agent answered 422 ("missing required field `data`")."""
    model = make_tiny_bert(3)
    version = engineer.upload_model("bert-triton", model).version
    engineer.change_stage("bert-triton", version, "staging")
    approver.change_stage("bert-triton", version, "production")
    agent = start_agent("triton-edge")
    wait_until(
        "the transformer", lambda: serving_version(agent, "bert-triton") == str(version), 60
    )
    client = triton.InferenceServerClient(agent.url.removeprefix("http://"))
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    feed = bert_feed(2, 32, 3, seed=7)
    inputs = []
    for name, values in feed.items():
        tensor = triton.InferInput(name, list(values.shape), "INT64")
        tensor.set_data_from_numpy(values)  # binary_data=True, the default
        inputs.append(tensor)
    direct = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    expected = direct.run(["logits"], feed)[0]
    every = client.infer("bert-triton", inputs)  # no outputs named: all of them in binary
    np.testing.assert_allclose(every.as_numpy("logits"), expected, rtol=1e-5, atol=1e-6)
    asked = client.infer("bert-triton", inputs, outputs=[triton.InferRequestedOutput("logits")])
    np.testing.assert_allclose(asked.as_numpy("logits"), expected, rtol=1e-5, atol=1e-6)
    as_json = client.infer(
        "bert-triton",
        inputs,
        outputs=[triton.InferRequestedOutput("logits", binary_data=False)],
    )
    np.testing.assert_allclose(as_json.as_numpy("logits"), expected, rtol=1e-5, atol=1e-6)
