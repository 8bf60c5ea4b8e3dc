"""Zip archives of models: unpacked safely, and an ONNX model whose weights are external
data files normalised to ``model.onnx`` + ``model.onnx.data``, as bundles hold them."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from appliance.bundle.manifest import ONNX_DATA_FILE, ONNX_FILE
from appliance.errors import InvalidInputError, UnprocessableInputError

EXTRACT_MAX_BYTES = 64 * 1024**3
"""What an archive may unpack to: beyond it, a zip bomb rather than a model."""


def extract(archive: Path, folder: Path) -> None:
    """Unpack ``archive`` into ``folder`` (zipfile drops absolute paths and ``..`` parts
    and makes no links)."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            if sum(i.file_size for i in zipped.infolist()) > EXTRACT_MAX_BYTES:
                raise UnprocessableInputError(
                    f"model: the archive unpacks to more than {EXTRACT_MAX_BYTES >> 30} GiB"
                )
            zipped.extractall(folder)
    except zipfile.BadZipFile as exc:
        raise InvalidInputError(f"model: a damaged zip archive ({exc})") from exc


def onnx_with_external_data(archive: Path, work: Path) -> Path:
    """The one ``.onnx`` file in ``archive`` with the weights it keeps beside it, written
    as ``work/onnx/model.onnx`` and ``model.onnx.data``; every weight file must lie
    inside the archive."""
    unpacked = work / "unpacked"
    extract(archive, unpacked)
    models = sorted(unpacked.rglob("*.onnx"))
    if len(models) != 1:
        raise UnprocessableInputError(
            f"model: an archive of an ONNX model holds one .onnx file, this one {len(models)}"
        )
    return normalised(models[0], work)


def normalised(path: Path, work: Path) -> Path:
    """The unpacked ONNX model at ``path`` with any weights it keeps in files beside it
    (each must lie in its folder), written as ``work/onnx/model.onnx`` and
    ``model.onnx.data``, as bundles hold them."""
    import onnx  # lazy: onnx takes 0.14 s; only ONNX uploads need it
    from onnx.external_data_helper import (
        ExternalDataInfo,
        load_external_data_for_model,
        uses_external_data,
    )

    base = path.parent.resolve()
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise InvalidInputError(f"model: {path.name} is not an ONNX model ({exc})") from exc
    tensors = [t for t in _tensors(model.graph) if uses_external_data(t)]
    for tensor in tensors:
        location = ExternalDataInfo(tensor).location
        path = (base / location).resolve()
        if not path.is_relative_to(base) or not path.is_file():
            raise UnprocessableInputError(
                f"model: weight {tensor.name!r} is kept in {location!r}, which the archive "
                "does not hold beside the model"
            )
    load_external_data_for_model(model, str(base))
    out = work / "onnx"
    out.mkdir()
    onnx.save_model(
        model,
        str(out / ONNX_FILE),
        save_as_external_data=bool(tensors),
        all_tensors_to_one_file=True,
        location=ONNX_DATA_FILE,
        size_threshold=1024,
    )
    return out / ONNX_FILE


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor a graph holds: initializers and node attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _tensors(subgraph)
