"""Test models built in code: a tiny ONNX classifier and a reference sample for it."""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import io
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def make_tiny_onnx(n_features: int = 4, n_classes: int = 2) -> bytes:
    """A deterministic classifier: ``input`` FLOAT [batch, n_features] -> MatMul -> Softmax.

    The output is ``probabilities`` FLOAT [batch, n_classes]; opset 17. Built with
    ``onnx.helper`` only (no torch), so it is fast and identical on every run.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = (
        np.arange(n_features * n_classes, dtype=np.float32).reshape(n_features, n_classes) / 10.0
        - 0.3
    )
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "weights"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", n_features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", n_classes])],
        initializer=[numpy_helper.from_array(weights, "weights")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="appliance-tests"
    )
    model.ir_version = 8  # readable by every onnxruntime/openvino we support
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def make_reference_npy(rows: int = 32, n_features: int = 4, *, seed: int = 0) -> bytes:
    """A ``.npy`` reference sample of shape [rows, n_features] (float32)."""
    sample = np.random.default_rng(seed).standard_normal((rows, n_features)).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, sample, allow_pickle=False)
    return buffer.getvalue()


BERT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def make_tiny_bert(
    inputs: int = 3, *, vocab: int = 1000, hidden: int = 32, layers: int = 2
) -> bytes:
    """A real (if tiny) BERT sequence classifier from ``transformers``, exported to ONNX as a
    customer brings one: int64 ``input_ids``, ``attention_mask`` and ``token_type_ids``
    (the first ``inputs`` of them) with dynamic batch and sequence axes, ``logits`` out.

    Built from a config with fixed-seed weights (no download); token type ids must be 0 or
    1 and token ids below ``vocab``, so random integer probes break it. ``hidden`` and
    ``layers`` size it (the benchmark's is BERT-mini: 256 and 4).

    The export is deterministic, so each size is built once per machine (and per torch,
    transformers and onnx, and this code) and kept in the user's cache folder, as mypy's
    cache is (docs/decisions.md, "Tests"): importing transformers costs 4 s of CPU, the
    export 0.2 s, and the suite's processes ask for the same few models again and again.
    """
    name = f"bert-{inputs}-{vocab}-{hidden}-{layers}-{_build_key(_export_tiny_bert)}"
    cached = TEST_MODELS_CACHE / f"{name}.onnx"
    if cached.is_file():
        return cached.read_bytes()
    built = _export_tiny_bert(inputs, vocab, hidden, layers)
    TEST_MODELS_CACHE.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(f".{cached.name}.{os.getpid()}")
    partial.write_bytes(built)
    partial.replace(cached)  # whole or absent, whichever process writes it
    return built


TEST_MODELS_CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "appliance" / "test-models"
)


def _build_key(builder: Callable[..., bytes]) -> str:
    """What a cached model depends on: the exporting libraries' versions and the code."""
    versions = "-".join(
        f"{p}{importlib.metadata.version(p)}" for p in ("torch", "transformers", "onnx")
    )
    return f"{versions}-{hashlib.sha256(inspect.getsource(builder).encode()).hexdigest()[:12]}"


def _export_tiny_bert(inputs: int, vocab: int, hidden: int, layers: int) -> bytes:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    sizes: dict[str, Any] = {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": max(2, hidden // 64),
        "intermediate_size": hidden * 2 if hidden < 64 else hidden * 4,
        "max_position_embeddings": 256,
        "num_labels": 2,
    }
    model = BertForSequenceClassification(BertConfig(**sizes))
    model.train(False)
    names = list(BERT_INPUTS[:inputs])

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            logits: torch.Tensor = self.bert(**dict(zip(names, tensors, strict=True))).logits
            return logits

    sample = tuple(torch.zeros((2, 16), dtype=torch.int64) for _ in names)
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on transformers' Python branches
        torch.onnx.export(
            Wrapped(),
            sample,
            f"{folder}/model.onnx",
            input_names=names,
            output_names=["logits"],
            dynamic_axes={**{n: {0: "batch", 1: "seq"} for n in names}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
        return Path(folder, "model.onnx").read_bytes()


def bert_feed(batch: int, seq: int, inputs: int = 3, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Realistic inputs: token ids in the vocabulary, a mask with padding at the end, two
    segments."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 1000, (batch, seq), dtype=np.int64)
    lengths = rng.integers(seq // 2, seq + 1, batch)
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    types = (np.arange(seq)[None, :] >= seq // 2).astype(np.int64).repeat(batch, 0)
    return dict(zip(BERT_INPUTS[:inputs], (ids * mask, mask, types), strict=False))


def make_picky_onnx() -> bytes:
    """A model no derived probe can run: it looks ``ids + 5`` up in a one-row table, so
    only ids of -5 are in range (as only some token ids are in a real vocabulary)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("Add", ["ids", "five"], ["moved"]),
            helper.make_node("Gather", ["table", "moved"], ["out"]),
        ],
        "picky",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 2])],
        initializer=[
            numpy_helper.from_array(np.array([[0.25, 0.75]], np.float32), "table"),
            numpy_helper.from_array(np.array(5, np.int64), "five"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def make_linear_regressor_onnx() -> bytes:
    """An ``ai.onnx.ml`` LinearRegressor (``X`` FLOAT [batch, 4] -> ``Y`` [batch, 1]), as
    scikit-learn converters write them: ONNX Runtime runs it, OpenVINO cannot convert it."""
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node(
        "LinearRegressor",
        ["X"],
        ["Y"],
        domain="ai.onnx.ml",
        coefficients=[0.5, -1.0, 2.0, 0.25],
        intercepts=[0.1],
        targets=1,
    )
    graph = helper.make_graph(
        [node],
        "linear",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", 1])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def make_text_onnx() -> bytes:
    """BYTES in and out: ``text`` STRING [batch] -> ``label`` INT64 (cat 1, dog 2, else 0)
    and ``animal`` STRING ("Felis", "Canis", "unknown"), two ``ai.onnx.ml`` LabelEncoders."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node(
            "LabelEncoder",
            ["text"],
            ["label"],
            domain="ai.onnx.ml",
            keys_strings=["cat", "dog"],
            values_int64s=[1, 2],
            default_int64=0,
        ),
        helper.make_node(
            "LabelEncoder",
            ["label"],
            ["animal"],
            domain="ai.onnx.ml",
            keys_int64s=[0, 1, 2],
            values_strings=["unknown", "Felis", "Canis"],
            default_string="?",
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "text",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch"])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
            helper.make_tensor_value_info("animal", TensorProto.STRING, ["batch"]),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def make_slow_onnx(size: int = 256) -> bytes:
    """A model as slow as the client asks: ``y = x`` [batch, 1] after ``max(rounds)``
    [batch] INT64 rounds of a ``size``² MatMul in a Loop (about 0.4 ms a round at 256 on
    one core). Probes send zeros, so importing it is quick."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    square = [size, size]
    body = helper.make_graph(
        [
            helper.make_node("MatMul", ["state_in", "w"], ["state_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "round",
        [
            helper.make_tensor_value_info("iter", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_in", TensorProto.FLOAT, square),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_out", TensorProto.FLOAT, square),
        ],
    )
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMax", ["rounds"], ["trips"], keepdims=0),
            helper.make_node("Loop", ["trips", "true", "init"], ["final"], body=body),
            helper.make_node("ReduceSum", ["final"], ["total"], keepdims=0),
            helper.make_node("Mul", ["total", "zero"], ["nothing"]),
            helper.make_node("Add", ["x", "nothing"], ["y"]),
        ],
        "slow",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1]),
            helper.make_tensor_value_info("rounds", TensorProto.INT64, ["batch"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
        initializer=[
            numpy_helper.from_array(np.eye(size, dtype=np.float32), "w"),
            numpy_helper.from_array(np.array(True), "true"),
            numpy_helper.from_array(np.ones(square, np.float32), "init"),
            numpy_helper.from_array(np.array(0, np.float32), "zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())
