"""Reading an MLflow model directory (``MLmodel``) without MLflow: its flavours and its
signature, which names a converted model's inputs and gives its probe inputs."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from appliance.bundle.manifest import TensorSpec
from appliance.bundle.tensors import NUMPY_TO_V2
from appliance.errors import UnprocessableInputError


@dataclass(frozen=True)
class MlflowModel:
    root: Path
    flavours: dict[str, dict[str, Any]]
    inputs: list[TensorSpec] = field(default_factory=list)
    """A tensor-based signature's inputs (``[]`` when there is none)."""
    columns: int | None = None
    """How many columns a column-based (DataFrame) signature has."""

    @property
    def skops(self) -> bool:
        """A sklearn flavour saved with skops: readable without running code from it."""
        return self.flavours.get("sklearn", {}).get("serialization_format") == "skops"

    @property
    def pickled(self) -> bool:
        """Whether converting it means unpickling (its flavour is neither onnx nor
        skops-saved sklearn): only on the uploader's own machine."""
        return "onnx" not in self.flavours and not self.skops

    def file(self, flavour: str, key: str) -> Path:
        """A flavour's file, refused when it is missing or points outside the directory."""
        name = str(self.flavours[flavour].get(key, ""))
        path = (self.root / name).resolve()
        if not name or not path.is_relative_to(self.root.resolve()) or not path.exists():
            raise UnprocessableInputError(f"model: MLmodel's {flavour}.{key} {name!r} is missing")
        return path


def find_root(folder: Path) -> Path:
    """The directory holding ``MLmodel``: ``folder`` or its one subdirectory that does."""
    found = sorted(
        p.parent for p in folder.rglob("MLmodel") if len(p.relative_to(folder).parts) <= 2
    )
    if not found:
        raise UnprocessableInputError("model: no MLmodel file at the top of the archive")
    return found[0]


def read_archive(archive: Path, folder: Path) -> MlflowModel:
    """The flavours and signature of the zipped MLflow model ``archive``, unpacking only
    its ``MLmodel`` file (into ``folder``): enough to decide how to convert it."""
    with zipfile.ZipFile(archive) as zipped:
        for name in zipped.namelist():
            if name.rsplit("/", 1)[-1] == "MLmodel":
                zipped.extract(name, folder)
    return read(folder)


def read(folder: Path) -> MlflowModel:

    root = find_root(folder)
    try:
        document = yaml.safe_load((root / "MLmodel").read_text("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UnprocessableInputError(f"model: MLmodel is not readable YAML ({exc})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("flavors"), dict):
        raise UnprocessableInputError("model: MLmodel names no flavors")
    flavours = {str(k): v for k, v in document["flavors"].items() if isinstance(v, dict)}
    inputs, columns = _signature(document.get("signature"))
    return MlflowModel(root=root, flavours=flavours, inputs=inputs, columns=columns)


def _signature(signature: Any) -> tuple[list[TensorSpec], int | None]:
    if not isinstance(signature, dict) or not signature.get("inputs"):
        return [], None
    try:
        specs = json.loads(signature["inputs"])
    except (TypeError, ValueError) as exc:
        raise UnprocessableInputError(f"model: MLmodel's signature is not JSON ({exc})") from exc
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise UnprocessableInputError("model: MLmodel's signature inputs must be a list")
    if not all(s.get("type") == "tensor" for s in specs):
        return [], len(specs)
    inputs = []
    for i, spec in enumerate(specs):
        tensor = spec.get("tensor-spec") or {}
        try:
            datatype = NUMPY_TO_V2[np.dtype(tensor.get("dtype"))]
            shape = [int(d) for d in tensor.get("shape", [])]
        except (TypeError, ValueError, KeyError) as exc:
            raise UnprocessableInputError(
                f"model: signature input {i} has a datatype or shape the hub cannot read"
            ) from exc
        name = str(spec.get("name") or f"input_{i}")
        inputs.append(TensorSpec(name=name, datatype=datatype, shape=shape))
    return inputs, None
