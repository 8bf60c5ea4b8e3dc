"""Issue 15: scikit-learn, PyTorch and MLflow models import by conversion to ONNX, and the
converted graph answers as the original model does; pickles are refused on the hub (they
run code when read) and converted on the uploader's machine instead."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from appliance.errors import UnprocessableInputError
from hub.registry import bundler
from hub.registry.formats.convert import to_onnx
from hub.registry.formats.detect import ModelFormat
from hub.registry.formats.isolated import as_onnx
from tests.harness import formats as f
from tests.harness.models import bert_feed, make_tiny_bert, make_tiny_onnx

pytestmark = pytest.mark.slow


def _as_onnx(data: bytes, sample: bytes | None, work: Path) -> tuple[bytes, ModelFormat]:
    """Upload ``data`` as the hub does: the ONNX file it becomes, and the format."""
    upload = work / "upload"
    upload.write_bytes(data)
    path, fmt = as_onnx(upload, sample, work)
    return path.read_bytes(), fmt


def _run(onnx_bytes: bytes, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    return [np.asarray(r) for r in session.run(None, feed)]


def _torch(module: torch.nn.Module, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    with torch.no_grad():
        return [t.numpy() for t in module.eval()(*(torch.from_numpy(v) for v in feed.values()))]


def _answers_as(onnx_bytes: bytes, module: torch.nn.Module, feed: dict[str, np.ndarray]) -> None:
    """The converted graph gives the module's every output on ``feed``."""
    for got, want in zip(_run(onnx_bytes, feed), _torch(module, feed), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["pipeline", "forest"])
def test_a_skops_classifier_converts_in_a_child_and_gives_sklearns_probabilities(
    kind: str, tmp_path: Path
) -> None:
    estimator = f.sklearn_classifier(kind)
    onnx_bytes, fmt = _as_onnx(f.skops_bytes(estimator), None, tmp_path)
    assert fmt is ModelFormat.SKOPS
    x = f.features(50, seed=1)
    label, probabilities = _run(onnx_bytes, {"X": x})
    np.testing.assert_array_equal(label, estimator.predict(x))
    np.testing.assert_allclose(probabilities, estimator.predict_proba(x), atol=1e-5)


class Sneaky:
    """Not a scikit-learn type: a skops file holding it is not the hub's to trust."""

    def fit(self, x: object, y: object) -> Sneaky:
        return self

    def predict(self, x: object) -> None:
        return None


def test_a_skops_file_with_a_foreign_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnprocessableInputError, match="does not trust"):
        _as_onnx(f.skops_bytes(Sneaky()), None, tmp_path)


@pytest.mark.parametrize(
    "pickled",
    [
        lambda: f.joblib_bytes(f.sklearn_classifier()),
        lambda: f.torch_save_bytes(f.TwoHeads()),
    ],
    ids=["joblib", "torch.save"],
)
def test_pickles_are_refused_on_the_hub_with_the_way_to_import_them(pickled, tmp_path) -> None:
    with pytest.raises(UnprocessableInputError) as refused:
        _as_onnx(pickled(), None, tmp_path)
    assert "does not unpickle" in refused.value.message
    assert "appliance model import" in (refused.value.hint or "")
    assert not (tmp_path / "converted.onnx").exists()


def test_torchscript_is_traced_on_the_samples_and_keeps_a_dynamic_batch(tmp_path: Path) -> None:
    module = f.TwoHeads()
    sample = tmp_path / "sample.npz"
    np.savez(sample, **f.torch_inputs(4))
    onnx_bytes, fmt = _as_onnx(f.torchscript_bytes(module), sample.read_bytes(), tmp_path)
    assert fmt is ModelFormat.TORCHSCRIPT
    feed = f.torch_inputs(7, seed=3)
    _answers_as(onnx_bytes, module, feed)


def test_torchscript_without_samples_says_to_give_them(tmp_path: Path) -> None:
    with pytest.raises(UnprocessableInputError) as refused:
        _as_onnx(f.torchscript_bytes(f.TwoHeads()), None, tmp_path)
    assert "--sample" in (refused.value.hint or "")


def test_a_torch_export_program_converts_with_its_names_and_dynamic_batch(tmp_path) -> None:
    module = f.TwoHeads()
    onnx_bytes, fmt = _as_onnx(f.exported_bytes(module), None, tmp_path)
    assert fmt is ModelFormat.TORCH_EXPORT
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x", "scale"]
    feed = f.torch_inputs(5, seed=2)
    _answers_as(onnx_bytes, module, feed)


def test_mlflow_onnx_and_skops_flavours_convert_on_the_hub(tmp_path: Path) -> None:
    estimator = f.sklearn_classifier()
    x = f.features(20, seed=4)
    skops_dir = f.mlflow_zip(
        "sklearn-skops", {"model.skops": f.skops_bytes(estimator)}, f.column_signature(4)
    )
    onnx_bytes, fmt = _as_onnx(skops_dir, None, _mk(tmp_path / "a"))
    assert fmt is ModelFormat.MLFLOW
    np.testing.assert_allclose(_run(onnx_bytes, {"X": x})[1], estimator.predict_proba(x), atol=1e-5)
    onnx_dir = f.mlflow_zip(
        "onnx", {"model.onnx": onnx_bytes}, f.tensor_signature(("X", "float32", [-1, 4]))
    )
    again, fmt = _as_onnx(onnx_dir, None, _mk(tmp_path / "b"))
    assert (again, fmt) == (onnx_bytes, ModelFormat.MLFLOW)


def _mk(path: Path) -> Path:
    path.mkdir()
    return path


def test_mlflow_pickle_flavours_are_refused_on_the_hub_and_convert_locally(tmp_path) -> None:
    """MLflow's pytorch flavour is a torch.save pickle: the hub refuses it; the uploader's
    CLI converts it, its tensor signature standing in for sample inputs."""
    module = f.TwoHeads()
    zipped = f.mlflow_zip(
        "pytorch",
        {"data/model.pth": f.torch_save_bytes(module)},
        f.tensor_signature(("x", "float32", [-1, 4]), ("scale", "float32", [-1, 1])),
    )
    with pytest.raises(UnprocessableInputError, match="does not unpickle"):
        _as_onnx(zipped, None, tmp_path)
    source, out = tmp_path / "local.zip", tmp_path / "local.onnx"
    source.write_bytes(zipped)
    assert to_onnx(source, out, None, trust_pickles=True) is ModelFormat.MLFLOW
    feed = f.torch_inputs(6, seed=5)
    _answers_as(out.read_bytes(), module, feed)


def test_a_zipmap_classifier_serves_its_probabilities_as_a_tensor(tmp_path: Path) -> None:
    from skl2onnx import to_onnx as skl_to_onnx

    estimator = f.sklearn_classifier()
    with_zipmap = skl_to_onnx(estimator, f.features(1)).SerializeToString()
    prepared = bundler.prepare(tmp_path, with_zipmap, None)
    probabilities = next(o for o in prepared.outputs if o.name == "output_probability")
    assert probabilities.datatype == "FP32" and probabilities.shape == [-1, -1]
    x = f.features(9, seed=6)
    served = _run((tmp_path / "model.onnx").read_bytes(), {"X": x})
    np.testing.assert_allclose(served[1], estimator.predict_proba(x), atol=1e-5)


def test_a_graph_with_a_non_tensor_output_is_422(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("SequenceConstruct", ["x"], ["seq"])],
        "seq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_sequence_value_info("seq", TensorProto.FLOAT, [None, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnprocessableInputError, match="not a tensor"):
        bundler.prepare(tmp_path, model.SerializeToString(), None)


def test_an_mlflow_model_missing_its_file_is_422(tmp_path: Path) -> None:
    zipped = f.mlflow_zip("onnx", {}, [])
    with pytest.raises(UnprocessableInputError, match="missing"):
        _as_onnx(zipped, None, tmp_path)


def test_an_onnx_model_with_external_weights_becomes_model_onnx_and_its_data(tmp_path) -> None:
    """Issue 15: models past 2 GB keep their weights in external-data files; the archive's
    layout (any names, a subfolder) is normalised to what bundles hold."""
    plain = make_tiny_bert(3)
    converted, fmt = _as_onnx(f.external_data_zip(plain), None, _mk(tmp_path / "work"))
    assert fmt is ModelFormat.ONNX_ARCHIVE
    folder = _mk(tmp_path / "bundle")
    prepared = bundler.prepare(folder, tmp_path / "work" / "onnx" / "model.onnx", None)
    kept = sorted(p.name for p in folder.iterdir() if p.name.startswith("model.onnx"))
    assert kept == ["model.onnx", "model.onnx.data"]
    assert len(converted) < len(plain) // 4  # the weights are in the data file, not the graph
    feed = bert_feed(2, 16, 3)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(None, feed)[0], _run(plain, feed)[0])
    assert [o.name for o in prepared.outputs] == ["logits"]


@pytest.mark.parametrize(
    ("weights", "says"),
    [("../../outside.bin", "does not hold beside the model"), ("/etc/hostname", "does not hold")],
)
def test_external_weights_outside_the_archive_are_refused(weights, says, tmp_path) -> None:
    with pytest.raises(UnprocessableInputError, match=says):
        _as_onnx(f.external_data_zip(make_tiny_onnx(), weights), None, tmp_path)


def test_an_mlflow_onnx_model_keeps_its_external_weights(tmp_path) -> None:
    """mlflow.onnx.save_model(save_as_external_data=True) keeps the weights beside
    model.onnx; the hub copied model.onnx alone, so the model could not load."""
    plain = make_tiny_bert(3)
    files = f.external_data_files(plain, "model.onnx.weights", "model.onnx")
    zipped = f.mlflow_zip("onnx", files, f.tensor_signature(("input_ids", "int64", [-1, -1])))
    converted, fmt = _as_onnx(zipped, None, _mk(tmp_path / "work"))
    assert fmt is ModelFormat.MLFLOW and len(converted) < len(plain) // 4
    folder = _mk(tmp_path / "bundle")
    bundler.prepare(folder, tmp_path / "work" / "onnx" / "model.onnx", None)
    feed = bert_feed(2, 16, 3)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(None, feed)[0], _run(plain, feed)[0])
    outside = f.mlflow_zip("onnx", f.external_data_files(plain, "../w.bin", "model.onnx"), [])
    with pytest.raises(UnprocessableInputError, match="does not hold beside the model"):
        _as_onnx(outside, None, _mk(tmp_path / "outside"))


def test_an_archive_of_two_onnx_models_is_422(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.onnx", make_tiny_onnx())
        archive.writestr("b.onnx", make_tiny_onnx())
    with pytest.raises(UnprocessableInputError, match=r"one \.onnx file, this one 2"):
        _as_onnx(buffer.getvalue(), None, tmp_path)
