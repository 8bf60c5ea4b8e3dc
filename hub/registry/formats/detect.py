"""Telling a model file's format from its first bytes and, for zip archives, their names."""

from __future__ import annotations

import zipfile
from enum import StrEnum
from pathlib import Path

from appliance.errors import InvalidInputError, UnprocessableInputError

_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"x\x01", b"x\x5e", b"x\x9c", b"x\xda")
"""gzip, bz2, xz and zlib: how joblib compresses the pickles it writes."""


class ModelFormat(StrEnum):
    ONNX = "onnx"
    ONNX_ARCHIVE = "onnx-external-data"
    SKOPS = "sklearn-skops"
    TORCHSCRIPT = "torchscript"
    TORCH_EXPORT = "torch-export"
    MLFLOW = "mlflow"
    PICKLE = "pickle"


def detect(path: Path) -> ModelFormat:
    """The format of the model file at ``path``; anything that is not a zip archive or a
    pickle is taken for ONNX, which ONNX Runtime then checks."""
    with path.open("rb") as f:
        head = f.read(8)
    if head[:4] == b"PK\x03\x04":
        return _archive(path)
    if (len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5) or head.startswith(_COMPRESSED):
        return ModelFormat.PICKLE
    return ModelFormat.ONNX


def _archive(path: Path) -> ModelFormat:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile as exc:
        raise InvalidInputError(f"model: a damaged zip archive ({exc})") from exc
    bases = {n.rsplit("/", 1)[-1] for n in names}
    if "MLmodel" in bases:
        return ModelFormat.MLFLOW
    if "schema.json" in names:
        return ModelFormat.SKOPS
    if any(n.endswith("/models/model.json") for n in names):
        return ModelFormat.TORCH_EXPORT
    if any("/code/" in n for n in names) and "constants.pkl" in bases:
        return ModelFormat.TORCHSCRIPT
    if "data.pkl" in bases:
        return ModelFormat.PICKLE
    if any(n.endswith(".onnx") for n in names):
        return ModelFormat.ONNX_ARCHIVE
    raise UnprocessableInputError(
        "model: a zip archive the hub does not know (not an ONNX model with its weights, an "
        "MLflow model directory, a skops file, a TorchScript module or a torch.export program)"
    )


def refuse_pickle(what: str = "model") -> UnprocessableInputError:
    return UnprocessableInputError(
        f"{what}: a pickle (joblib, pickle, torch.save): the hub does not unpickle uploads, "
        "since unpickling runs whatever code the file holds",
        hint="import it with 'appliance model import FILE', which converts it to ONNX on "
        "your machine; or save scikit-learn models with skops.io.dump and PyTorch models "
        "with torch.jit.save or torch.export.save",
    )


def unconvertible(message: str, exc: BaseException) -> UnprocessableInputError:
    """A refusal that quotes the converter's own words, cut to a readable length."""
    return UnprocessableInputError(f"{message} ({exc})"[:600])
