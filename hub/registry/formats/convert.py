"""One entry for every format: the model at a path, written out as an ONNX file."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from appliance.errors import UnprocessableInputError
from hub.registry.formats import mlflow, pytorch, sklearn
from hub.registry.formats.archive import extract
from hub.registry.formats.detect import ModelFormat, detect, refuse_pickle, unconvertible
from hub.registry.samples import derived_inputs


def to_onnx(
    source: Path, out: Path, sample: dict[str, np.ndarray] | None, *, trust_pickles: bool = False
) -> ModelFormat:
    """Convert the model at ``source`` to ONNX at ``out``; its format is returned.
    ``trust_pickles`` only where the file is its owner's (the uploader's own machine)."""
    fmt = detect(source)
    if fmt is ModelFormat.ONNX:
        shutil.copyfile(source, out)
    elif fmt is ModelFormat.PICKLE:
        if not trust_pickles:
            raise refuse_pickle()
        _unpickled_to_onnx(_unpickle(source), out, sample or {}, None, None)
    elif fmt is ModelFormat.SKOPS:
        out.write_bytes(sklearn.to_onnx(sklearn.load_skops(source)))
    elif fmt is ModelFormat.TORCHSCRIPT:
        pytorch.module_to_onnx(pytorch.load_torchscript(source), sample or {}, out)
    elif fmt is ModelFormat.TORCH_EXPORT:
        pytorch.exported_to_onnx(source, out)
    elif fmt is ModelFormat.MLFLOW:
        with tempfile.TemporaryDirectory(dir=out.parent) as folder:
            extract(source, Path(folder))
            _mlflow(mlflow.read(Path(folder)), out, sample, trust_pickles)
    else:  # an ONNX archive: the hub reads it itself (hub.registry.formats.archive)
        raise UnprocessableInputError(f"model: {fmt.value} is not converted here")
    return fmt


def _mlflow(
    model: mlflow.MlflowModel,
    out: Path,
    sample: dict[str, np.ndarray] | None,
    trust_pickles: bool,
) -> None:
    dynamic = {s.name: [i for i, d in enumerate(s.shape) if d == -1] for s in model.inputs}
    if sample is None and model.inputs:
        sample = derived_inputs(model.inputs, 1, 0)
    if "onnx" in model.flavours:  # the hub reads it as ONNX (hub.registry.formats.isolated)
        raise UnprocessableInputError("model: an MLflow onnx flavour is not converted here")
    if "sklearn" in model.flavours:
        path = model.file("sklearn", "pickled_model")
        if model.skops:
            estimator = sklearn.load_skops(path)
        elif trust_pickles:
            estimator = _unpickle(path)
        else:
            raise refuse_pickle("model (MLflow sklearn flavour)")
        features = model.columns or (model.inputs[0].shape[-1] if model.inputs else None)
        out.write_bytes(sklearn.to_onnx(estimator, features if features != -1 else None))
    elif "pytorch" in model.flavours:
        if not trust_pickles:
            raise refuse_pickle("model (MLflow pytorch flavour)")
        data = model.file("pytorch", "model_data")
        module = _unpickle(data / "model.pth" if data.is_dir() else data)
        _unpickled_to_onnx(module, out, sample or {}, dynamic or None, model.columns)
    else:
        raise UnprocessableInputError(
            f"model: no MLflow flavour the hub converts among {sorted(model.flavours)}",
            hint="onnx, sklearn or pytorch",
        )


def _unpickle(path: Path) -> Any:
    """Only on the uploader's own machine: runs the code the pickle holds."""
    try:
        if zipfile.is_zipfile(path):
            import torch  # lazy: torch takes 1 s; only a pickled torch model needs it

            return torch.load(str(path), map_location="cpu", weights_only=False)
        import joblib  # lazy: only pickled uploads, on the uploader's machine

        return joblib.load(path)
    except Exception as exc:
        raise unconvertible("model: the pickle could not be loaded", exc) from exc


def _unpickled_to_onnx(
    obj: Any,
    out: Path,
    sample: dict[str, np.ndarray],
    dynamic: dict[str, list[int]] | None,
    columns: int | None,
) -> None:
    if hasattr(obj, "fit") and hasattr(obj, "predict"):
        out.write_bytes(sklearn.to_onnx(obj, columns))
        return
    import torch  # lazy: torch takes 1 s; only a pickled torch model needs it

    if isinstance(obj, torch.nn.Module):
        pytorch.module_to_onnx(obj.eval(), sample, out, dynamic)
        return
    raise UnprocessableInputError(
        f"model: a pickle of {type(obj).__name__}, neither a scikit-learn estimator nor a "
        "PyTorch module"
    )
