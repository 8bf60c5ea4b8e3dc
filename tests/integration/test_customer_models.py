"""Issue 15: the models customers bring, imported through a real hub and served by a real
agent, answer exactly as ONNX Runtime does on the same file."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import torch
import tritonclient.http as triton

from appliance.bundle.tensors import NUMPY_TO_V2
from appliance.client.hub import HubClient
from appliance.errors import HubRejectedError
from tests.harness import formats as f
from tests.harness.models import (
    bert_feed,
    make_linear_regressor_onnx,
    make_picky_onnx,
    make_slow_onnx,
    make_text_onnx,
    make_tiny_bert,
)
from tests.harness.site import promote, serving_version, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _triton_inputs(module: Any, feed: dict[str, np.ndarray]) -> list[Any]:
    """``feed`` as ``module``'s (``tritonclient.http`` or ``.grpc``) inputs, set as stock
    clients set them (binary data by default)."""
    inputs = []
    for name, values in feed.items():
        tensor = module.InferInput(name, list(values.shape), NUMPY_TO_V2[values.dtype])
        tensor.set_data_from_numpy(values)
        inputs.append(tensor)
    return inputs


def _wire(feed: dict[str, np.ndarray]) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": k, "shape": list(v.shape), "datatype": "INT64", "data": v.ravel().tolist()}
            for k, v in feed.items()
        ]
    }


@pytest.mark.parametrize("inputs", [3, 2])
def test_a_multi_input_transformer_imports_and_answers_as_onnx_runtime_does(
    inputs: int, engineer: HubClient, approver: HubClient, start_test_agent: Any
) -> None:
    """A 3-input BERT answered 500 at import (random probe ids out of range); a 2-input one
    imported but agents refused it (NaN outputs against a NaN-blind comparison)."""
    model = make_tiny_bert(inputs)
    name = f"bert{inputs}"
    version = promote(engineer, approver, name, model).version
    agent = start_test_agent(f"nlp-{inputs}")
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
    engineer: HubClient, approver: HubClient, start_test_agent: Any
) -> None:
    with pytest.raises(HubRejectedError) as refused:
        engineer.upload_model("picky", make_picky_onnx())
    assert refused.value.status_code == 422
    assert "could not run it on probe inputs" in str(refused.value)
    assert "--sample" in (refused.value.hint or "")
    buffer = io.BytesIO()
    np.savez(buffer, ids=np.array([-5, -5, -5]))
    version = promote(
        engineer, approver, "picky", make_picky_onnx(), sample=buffer.getvalue()
    ).version
    agent = start_test_agent("picky-edge")
    wait_until("the picky model", lambda: serving_version(agent, "picky") == str(version), 60)
    body = {"inputs": [{"name": "ids", "shape": [2], "datatype": "INT64", "data": [-5, -5]}]}
    answer = httpx.post(f"{agent.url}/v2/models/picky/infer", json=body, timeout=30)
    assert answer.json()["outputs"][0]["data"] == [0.25, 0.75, 0.25, 0.75]


def test_a_model_openvino_cannot_run_is_served_by_onnx_runtime_and_says_why(
    engineer: HubClient, approver: HubClient, start_test_agent: Any
) -> None:
    """A scikit-learn style ``ai.onnx.ml`` regressor: OpenVINO cannot convert it, so the
    bundle offers ONNX Runtime only, says why, and agents on ``auto`` serve it."""
    with pytest.raises(HubRejectedError) as loose:
        engineer.upload_model("linear", make_linear_regressor_onnx(), tolerance={"atol": 2.0})
    assert loose.value.status_code == 400 and "tolerance" in str(loose.value)
    info = promote(
        engineer,
        approver,
        "linear",
        make_linear_regressor_onnx(),
        tolerance={"atol": 1e-6, "rtol": 1e-5},
    )
    assert info.runtimes == ["onnxruntime"]
    assert "LinearRegressor" in info.runtime_notes["openvino"]
    assert info.tolerance == {"atol": 1e-6, "rtol": 1e-5}
    agent = start_test_agent("linear-edge", runtime="auto")
    wait_until("the regressor", lambda: serving_version(agent, "linear") == str(info.version), 60)
    body = {"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [1, 1, 1, 1]}]}
    answer = httpx.post(f"{agent.url}/v2/models/linear/infer", json=body, timeout=30).json()
    assert answer["outputs"][0]["data"] == pytest.approx([1.85])


def test_a_stock_triton_client_with_its_defaults_is_answered_in_binary(
    engineer: HubClient, approver: HubClient, start_test_agent: Any
) -> None:
    """``tritonclient.http`` sends binary tensor data and asks for binary outputs by
    default; the agent answered 422 ("missing required field `data`")."""
    model = make_tiny_bert(3)
    version = promote(engineer, approver, "bert-triton", model).version
    agent = start_test_agent("triton-edge")
    wait_until("the transformer", lambda: serving_version(agent, "bert-triton") == str(version), 60)
    client = triton.InferenceServerClient(agent.url.removeprefix("http://"))
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    feed = bert_feed(2, 32, 3, seed=7)
    inputs = _triton_inputs(triton, feed)  # binary_data=True, the default
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


def test_probes_answer_while_a_model_computes_and_a_full_queue_is_429(
    engineer: HubClient, approver: HubClient, start_test_agent: Any
) -> None:
    """Inference ran on the event loop: ``/v2/health/live`` waited behind it (p50 569 ms
    with 8 clients). Now a model computing for seconds holds neither the probes nor the
    status, and one more request than its lane admits gets 429 with ``Retry-After``."""
    version = promote(engineer, approver, "slow", make_slow_onnx()).version
    lanes = {
        "APPLIANCE_INFERENCE_WORKERS": "1",
        "APPLIANCE_INFERENCE_QUEUE": "1",
        "APPLIANCE_INFERENCE_TIMEOUT_S": "600",  # a loaded test box must not turn it 504
    }
    agent = start_test_agent("slow-edge", env=lanes)
    wait_until("the slow model", lambda: serving_version(agent, "slow") == str(version), 60)
    url = f"{agent.url}/v2/models/slow/infer"

    def slow_request() -> httpx.Response:
        body = {
            "inputs": [
                {"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1.5]},
                {"name": "rounds", "shape": [1], "datatype": "INT64", "data": [10_000]},
            ]
        }
        return httpx.post(url, json=body, timeout=120)

    with ThreadPoolExecutor(2) as pool:
        running = [pool.submit(slow_request) for _ in range(2)]  # one runs, one waits
        wait_until(
            "both admitted",
            lambda: _admitted(agent.url) >= 2 or any(f.done() for f in running),
            30,
        )
        assert not any(f.done() for f in running), "the model answered too fast to test"
        assert httpx.get(f"{agent.url}/v2/health/live", timeout=10).status_code == 200
        assert httpx.get(f"{agent.url}/agent/status", timeout=10).status_code == 200
        busy = slow_request()
        assert not all(f.done() for f in running)  # all this while, the model computed
        assert busy.status_code == 429 and busy.headers["retry-after"] == "1", busy.text
        for future in running:
            assert future.result().json()["outputs"][0]["data"] == [1.5]


def _admitted(url: str) -> int:
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    line = next(
        (
            m
            for m in metrics.splitlines()
            if m.startswith('appliance_agent_inference_admitted{model="slow"')
        ),
        "",
    )
    return int(float(line.rsplit(" ", 1)[1])) if line else 0


def test_a_stock_triton_grpc_client_is_answered_as_onnx_runtime_does(
    engineer: HubClient, approver: HubClient, start_test_agent: Any
) -> None:
    """Issue 15: there was no gRPC endpoint. ``tritonclient.grpc`` with its defaults
    (raw_input_contents) against the agent's gRPC port: metadata, readiness and a 3-input
    transformer answering equal to direct ONNX Runtime; a bad request is INVALID_ARGUMENT."""
    import tritonclient.grpc as triton_grpc
    from tritonclient.utils import InferenceServerException

    model = make_tiny_bert(3)
    version = promote(engineer, approver, "bert-grpc", model).version
    agent = start_test_agent("grpc-edge")
    wait_until("the transformer", lambda: serving_version(agent, "bert-grpc") == str(version), 60)
    assert agent.grpc_address
    client = triton_grpc.InferenceServerClient(agent.grpc_address)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("bert-grpc")
    assert "binary_tensor_data" in client.get_server_metadata().extensions
    metadata = client.get_model_metadata("bert-grpc")
    assert [t.name for t in metadata.inputs] == ["input_ids", "attention_mask", "token_type_ids"]
    feed = bert_feed(4, 64, 3, seed=11)
    inputs = _triton_inputs(triton_grpc, feed)
    answer = client.infer("bert-grpc", inputs)
    direct = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        answer.as_numpy("logits"), direct.run(["logits"], feed)[0], rtol=1e-5, atol=1e-6
    )
    assert answer.get_response().model_version == str(version)
    wrong = triton_grpc.InferInput("input_ids", [1, 3], "FP32")
    wrong.set_data_from_numpy(np.zeros((1, 3), np.float32))
    with pytest.raises(InferenceServerException, match="datatype") as refused:
        client.infer("bert-grpc", [wrong, *inputs[1:]])
    assert refused.value.status() == "StatusCode.INVALID_ARGUMENT"
    with pytest.raises(InferenceServerException) as unknown:
        client.infer("no-such-model", inputs)
    assert unknown.value.status() == "StatusCode.NOT_FOUND"


def test_scikit_learn_pytorch_and_mlflow_models_are_served_as_the_originals_answer(
    engineer: HubClient, approver: HubClient, start_test_agent: Any
) -> None:
    """Issue 15, item 2: uploaded as their libraries save them, converted on the hub, and
    answered by an agent (through the stock Triton client) as the original model does."""
    classifier = f.sklearn_classifier("forest")
    module = f.TwoHeads()
    mlflow_skops = f.mlflow_zip(
        "sklearn-skops", {"model.skops": f.skops_bytes(classifier)}, f.column_signature(4)
    )
    uploads = {
        "forest": f.skops_bytes(classifier),
        "heads-export": f.exported_bytes(module),
        "forest-mlflow": mlflow_skops,
    }
    versions = {
        name: promote(engineer, approver, name, data).version for name, data in uploads.items()
    }
    with pytest.raises(HubRejectedError) as pickled:
        engineer.upload_model("forest-pickle", f.joblib_bytes(classifier))
    assert pickled.value.status_code == 422 and "does not unpickle" in str(pickled.value)
    agent = start_test_agent("formats-edge")
    for name, version in versions.items():
        wait_until(name, lambda n=name, v=version: serving_version(agent, n) == str(v), 60)
    client = triton.InferenceServerClient(agent.url.removeprefix("http://"))
    x = f.features(16, seed=9)
    for name in ("forest", "forest-mlflow"):
        answer = client.infer(name, _triton_inputs(triton, {"X": x}))
        np.testing.assert_array_equal(answer.as_numpy("label"), classifier.predict(x))
        np.testing.assert_allclose(
            answer.as_numpy("probabilities"), classifier.predict_proba(x), atol=1e-5
        )
    feed = f.torch_inputs(16, seed=9)
    inputs = _triton_inputs(triton, feed)
    answer = client.infer("heads-export", inputs)
    with torch.no_grad():
        expected = module.eval()(*(torch.from_numpy(v) for v in feed.values()))
    outputs = [o["name"] for o in client.get_model_metadata("heads-export")["outputs"]]
    for output, want in zip(outputs, expected, strict=True):
        np.testing.assert_allclose(answer.as_numpy(output), want.numpy(), rtol=1e-5, atol=1e-6)


def test_bytes_tensors_travel_as_json_binary_data_and_grpc(
    engineer: HubClient, approver: HubClient, start_test_agent: Any
) -> None:
    """Issue 15: BYTES, the one v2 datatype agents did not take. A string-in, string-out
    model imports (its probes are empty strings) and answers the stock Triton clients,
    HTTP (binary by default) and gRPC, and plain JSON, as ONNX Runtime does."""
    import tritonclient.grpc as triton_grpc

    model = make_text_onnx()
    info = promote(engineer, approver, "animals", model)
    assert [i["datatype"] for i in info.inputs] == ["BYTES"]
    agent = start_test_agent("text-edge")
    wait_until("the text model", lambda: serving_version(agent, "animals") == str(info.version), 60)
    words = np.array(["cat", "dog", "émeu", ""], dtype=object)
    want_label, want_animal = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(
        None, {"text": words}
    )
    http = triton.InferenceServerClient(agent.url.removeprefix("http://"))
    grpc_client = triton_grpc.InferenceServerClient(agent.grpc_address)
    for module, client in ((triton, http), (triton_grpc, grpc_client)):
        tensor = module.InferInput("text", [4], "BYTES")
        tensor.set_data_from_numpy(words)
        answer = client.infer("animals", [tensor])
        np.testing.assert_array_equal(answer.as_numpy("label"), want_label)
        animals = [a.decode("utf-8") for a in answer.as_numpy("animal")]
        assert animals == list(want_animal) == ["Felis", "Canis", "unknown", "unknown"]
    body = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["dog", "x"]}]}
    plain = httpx.post(f"{agent.url}/v2/models/animals/infer", json=body, timeout=30).json()
    assert {o["name"]: o["data"] for o in plain["outputs"]} == {
        "label": [2, 0],
        "animal": ["Canis", "unknown"],
    }
    body["inputs"][0]["data"] = [1, 2]
    refused = httpx.post(f"{agent.url}/v2/models/animals/infer", json=body, timeout=30)
    assert refused.status_code == 400 and "BYTES takes strings" in refused.text


def test_a_model_with_external_weights_is_served_as_onnx_runtime_answers(
    engineer: HubClient, approver: HubClient, start_test_agent: Any
) -> None:
    """Issue 15: weights in external-data files (models past 2 GB), uploaded as a zip of
    the model's folder; the bundle carries model.onnx and model.onnx.data to the agent."""
    model = make_tiny_bert(3)
    info = promote(engineer, approver, "bert-external", f.external_data_zip(model))
    agent = start_test_agent("external-edge")
    wait_until(
        "the model", lambda: serving_version(agent, "bert-external") == str(info.version), 60
    )
    feed = bert_feed(2, 24, 3, seed=4)
    answer = httpx.post(f"{agent.url}/v2/models/bert-external/infer", json=_wire(feed), timeout=30)
    assert answer.status_code == 200, answer.text
    (logits,) = answer.json()["outputs"]
    direct = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        np.asarray(logits["data"], np.float32).reshape(logits["shape"]),
        direct.run(["logits"], feed)[0],
        rtol=1e-5,
        atol=1e-6,
    )


def test_a_batched_model_answers_each_of_many_clients_as_onnx_runtime_does(
    engineer: HubClient, approver: HubClient, start_test_agent: Any
) -> None:
    """Issue 15, item 4: dynamic batching (APPLIANCE_BATCHING) gathers concurrent requests
    of a transformer into runs; each client still gets its own rows, through the stock
    Triton client, and requests of other sequence lengths are not joined with them."""
    model = make_tiny_bert(3)
    version = promote(engineer, approver, "bert-batched", model).version
    agent = start_test_agent("batch-edge", env={"APPLIANCE_BATCHING": "bert-batched=8:5"})
    wait_until("the model", lambda: serving_version(agent, "bert-batched") == str(version), 60)
    direct = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    feeds = [bert_feed(1 + i % 2, 16 if i % 3 else 32, 3, seed=i) for i in range(12)]

    def ask(feed: dict[str, np.ndarray]) -> np.ndarray:
        client = triton.InferenceServerClient(agent.url.removeprefix("http://"))
        inputs = _triton_inputs(triton, feed)
        return client.infer("bert-batched", inputs).as_numpy("logits")

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, feeds))
    for feed, answer in zip(feeds, answers, strict=True):
        np.testing.assert_allclose(answer, direct.run(["logits"], feed)[0], rtol=1e-4, atol=1e-5)
    stats = httpx.get(f"{agent.url}/v2/models/bert-batched/stats", timeout=10).json()
    (counts,) = stats["model_stats"]
    assert counts["inference_count"] == 12 and 1 <= counts["execution_count"] <= 12
