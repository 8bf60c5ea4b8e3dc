"""Model files in the formats customers bring, written by the libraries that write them:
scikit-learn through skops and joblib, PyTorch through torch.jit, torch.export and
torch.save, and MLflow model directories (``MLmodel`` as MLflow writes it), zipped."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import joblib
import numpy as np
import skops.io
import torch
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

FEATURES = 4


def features(rows: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, FEATURES)).astype(np.float32)


def sklearn_classifier(kind: str = "pipeline") -> Any:
    x = features(200)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)
    model = (
        make_pipeline(StandardScaler(), LogisticRegression())
        if kind == "pipeline"
        else RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0)
    )
    return model.fit(x, y)


def skops_bytes(estimator: Any) -> bytes:
    return skops.io.dumps(estimator)


def joblib_bytes(estimator: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    return buffer.getvalue()


class TwoHeads(torch.nn.Module):
    """Two inputs (features and a per-row scale), two outputs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Linear(FEATURES, 16), torch.nn.ReLU())
        self.head = torch.nn.Linear(16, 3)

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.body(x) * scale
        return self.head(hidden).softmax(-1), hidden.sum(-1, keepdim=True)


def torch_inputs(rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    return {"x": features(rows, seed), "scale": np.full((rows, 1), 0.5, np.float32)}


def torchscript_bytes(module: torch.nn.Module) -> bytes:
    example = tuple(torch.from_numpy(v) for v in torch_inputs(2).values())
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(module.eval(), example), buffer)
    return buffer.getvalue()


def exported_bytes(module: torch.nn.Module) -> bytes:
    example = tuple(torch.from_numpy(v) for v in torch_inputs(2).values())
    batch = torch.export.Dim("batch")
    program = torch.export.export(
        module.eval(), example, dynamic_shapes={"x": {0: batch}, "scale": {0: batch}}
    )
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def torch_save_bytes(module: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save(module, buffer)
    return buffer.getvalue()


def _tensor_spec(name: str | None, dtype: str, shape: list[int]) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "tensor", "tensor-spec": {"dtype": dtype, "shape": shape}}
    return spec | ({"name": name} if name else {})


def mlflow_zip(flavour: str, files: dict[str, bytes], signature: list[dict[str, Any]]) -> bytes:
    """A model directory as ``mlflow.<flavour>.save_model`` lays it out, zipped under the
    folder name ``model/``; ``files`` are its artifacts by path."""
    flavours = {
        "onnx": "  onnx:\n    code: null\n    data: model.onnx\n    onnx_version: 1.17.0\n",
        "sklearn": "  sklearn:\n    code: null\n    pickled_model: model.pkl\n"
        "    serialization_format: cloudpickle\n    sklearn_version: 1.5.2\n",
        "sklearn-skops": "  sklearn:\n    code: null\n    pickled_model: model.skops\n"
        "    serialization_format: skops\n    sklearn_version: 1.5.2\n",
        "pytorch": "  pytorch:\n    code: null\n    model_data: data\n    pytorch_version: 2.5.1\n",
    }
    loader = flavour.split("-")[0]
    mlmodel = (
        "artifact_path: model\nflavors:\n  python_function:\n    env:\n"
        "      conda: conda.yaml\n      virtualenv: python_env.yaml\n"
        f"    loader_module: mlflow.{loader}\n    python_version: 3.11.9\n"
        + flavours[flavour]
        + "mlflow_version: 2.17.0\nmodel_uuid: 5c0e1b1e6f0d4e6f9d1b0f3a2c4e5d6f\n"
        "signature:\n"
        f"  inputs: '{json.dumps(signature)}'\n"
        "  outputs: null\n  params: null\nutc_time_created: '2026-11-30 09:12:44.102311'\n"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model/MLmodel", mlmodel)
        archive.writestr("model/requirements.txt", f"mlflow==2.17.0\n{loader}\n")
        for path, data in files.items():
            archive.writestr(f"model/{path}", data)
    return buffer.getvalue()


def tensor_signature(*specs: tuple[str | None, str, list[int]]) -> list[dict[str, Any]]:
    return [_tensor_spec(*s) for s in specs]


def column_signature(columns: int) -> list[dict[str, Any]]:
    return [{"type": "double", "name": f"f{i}", "required": True} for i in range(columns)]


def external_data_zip(onnx_bytes: bytes, weights: str = "weights/params.bin") -> bytes:
    """``onnx_bytes`` with its weights moved to the external-data file ``weights`` (how
    models past protobuf's 2 GB are kept), zipped as ``model/``; a ``weights`` outside the
    folder (``../x``) is written as an attacker would."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data in external_data_files(onnx_bytes, weights, "net.onnx").items():
            archive.writestr(f"model/{path}", data)
    return buffer.getvalue()


def external_data_files(onnx_bytes: bytes, weights: str, graph: str) -> dict[str, bytes]:
    """The graph (as ``graph``) and its weights (as ``weights``), by path."""
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data

    model = onnx.load_from_string(onnx_bytes)
    convert_model_to_external_data(
        model, all_tensors_to_one_file=True, location="w.bin", size_threshold=0
    )
    blobs = {t.name: t.raw_data for t in model.graph.initializer}
    offset, data = 0, b""
    for tensor in model.graph.initializer:
        raw = blobs[tensor.name]
        entries = {"location": weights, "offset": str(offset), "length": str(len(raw))}
        del tensor.external_data[:]
        for key, value in entries.items():
            tensor.external_data.add(key=key, value=value)
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        data += raw
        offset += len(raw)
    return {graph: model.SerializeToString(), weights: data}
