"""Turning an ONNX model into a signed bundle.

:func:`prepare` does the slow part that does not depend on the version number
(load the model, read its signature, convert to OpenVINO IR, compute test
vectors); :func:`seal` writes the signed manifest once the version is known.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from appliance.bundle.format import check_vectors
from appliance.bundle.manifest import (
    IR_BIN_FILE,
    IR_XML_FILE,
    MANIFEST_FILE,
    ONNX_DATA_FILE,
    ONNX_FILE,
    REFERENCE_FILE,
    TEST_VECTORS_FILE,
    FileEntry,
    Lineage,
    Manifest,
    TensorSpec,
    TestVector,
    Tolerance,
)
from appliance.bundle.openvino_ir import compile_ir, convert_onnx, run_ir
from appliance.bundle.tensors import ONNX_TO_V2, V2_TO_NUMPY, to_wire
from appliance.clock import iso_utc, utcnow
from appliance.errors import InvalidInputError, TestVectorError, UnprocessableInputError
from appliance.fsutil import link_or_copy, sha256_file
from appliance.security.keys import KeyPair
from appliance.security.signing import sign_document
from hub.registry.formats.zipmap import without_zipmap
from hub.registry.samples import derived_inputs, load_samples, sample_batch

log = logging.getLogger(__name__)

REFERENCE_MAX_ROWS = 2000
"""Reference rows kept in a bundle: enough for drift tests, small enough for edge boxes."""
TEST_VECTOR_BATCHES = (1, 4)


@dataclass(frozen=True)
class Prepared:
    folder: Path
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    has_reference: bool
    tolerance: Tolerance
    runtime_notes: dict[str, str]


def _spec(node: Any) -> TensorSpec:
    datatype = ONNX_TO_V2.get(node.type)
    if not str(node.type).startswith("tensor("):
        raise UnprocessableInputError(
            f"model: {node.name!r} is a {node.type}, not a tensor: the Open Inference "
            "Protocol carries tensors only",
            hint="export the graph with tensor outputs (skl2onnx: options zipmap=False)",
        )
    if datatype is None:
        raise InvalidInputError(f"model: tensor {node.name!r} has unsupported type {node.type}")
    shape = [d if isinstance(d, int) and d > 0 else -1 for d in node.shape]
    return TensorSpec(name=node.name, datatype=datatype, shape=shape)


def _load_reference(data: bytes, inputs: list[TensorSpec]) -> np.ndarray:
    try:
        sample = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InvalidInputError(f"reference: not a NumPy .npy array ({exc})") from exc
    if len(inputs) != 1:
        raise InvalidInputError("reference: only single-input models take a reference sample")
    spec = inputs[0]
    expected = V2_TO_NUMPY[spec.datatype]
    if sample.ndim != len(spec.shape) or any(
        e not in (-1, a) for e, a in zip(spec.shape[1:], sample.shape[1:], strict=True)
    ):
        raise InvalidInputError(
            f"reference: shape {list(sample.shape)} does not fit input {spec.name!r} {spec.shape}"
        )
    if sample.dtype.kind not in "biuf":
        raise InvalidInputError(f"reference: dtype {sample.dtype} is not numeric")
    kept: np.ndarray = sample[:REFERENCE_MAX_ROWS].astype(expected)
    return kept


def _place(model: bytes | Path, folder: Path) -> None:
    """``model.onnx`` in ``folder``, with ``model.onnx.data`` when the model given as a
    file named ``model.onnx`` keeps its weights in one beside it
    (:func:`hub.registry.formats.archive.onnx_with_external_data` writes them so)."""
    if isinstance(model, bytes):
        (folder / ONNX_FILE).write_bytes(model)
        return
    link_or_copy(model, folder / ONNX_FILE)
    weights = model.with_name(ONNX_DATA_FILE)
    if model.name == ONNX_FILE and weights.is_file():
        link_or_copy(weights, folder / ONNX_DATA_FILE)


def _session(folder: Path) -> Any:
    import onnxruntime as ort  # lazy: onnxruntime takes 0.1 s; only checking a model needs it

    try:
        return ort.InferenceSession(str(folder / ONNX_FILE), providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own untyped errors for bad models
        # ORT names the file it read: a path on the hub, none of the uploader's business
        said = str(exc).replace(str(folder / ONNX_FILE), "the uploaded model")[:300]
        raise InvalidInputError(f"model: not a loadable ONNX model ({said})") from exc


def _example_inputs(
    inputs: list[TensorSpec],
    reference: np.ndarray | None,
    batch: int,
    seed: int,
    samples: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Probe inputs: the uploader's samples (:mod:`hub.registry.samples`), else rows of the
    reference sample when there are enough, else derived from the signature."""
    if samples is not None:
        return sample_batch(samples, inputs, batch, seed)
    if reference is not None and len(reference) >= seed * batch + batch:
        return {inputs[0].name: reference[seed * batch : seed * batch + batch].copy()}
    return derived_inputs(inputs, batch, seed)


def _probe(session: Any, feed: dict[str, np.ndarray], where: Path) -> list[Any]:
    """Run the model once on ``feed``; a model that cannot is refused with the runtime's
    own words (422), never a 500."""
    try:
        results: list[Any] = session.run(None, feed)
    except Exception as exc:  # ORT raises its own untyped errors
        shapes = ", ".join(f"{k} {list(v.shape)} {v.dtype}" for k, v in feed.items())
        said = str(exc).replace(str(where), "the uploaded model")[:400]
        raise UnprocessableInputError(
            f"model: ONNX Runtime could not run it on probe inputs ({shapes}): {said}",
            hint="give sample inputs the model accepts: 'appliance model import … --sample "
            "inputs.npz' (or .json), the multipart part 'sample' on the API",
        ) from exc
    return results


def _openvino(
    folder: Path, vectors: list[TestVector], outputs: list[TensorSpec], tolerance: Tolerance
) -> str | None:
    """Convert the model to OpenVINO IR and run the test vectors through it, compiled as
    agents compile it: ``None`` when the IR answers as ONNX Runtime does, otherwise why it
    is left out of the bundle (agents on ``auto`` then use ONNX Runtime)."""
    try:
        convert_onnx(folder)
    except Exception as exc:  # best effort: ONNX Runtime still serves
        return _without_ir(folder, f"OpenVINO could not convert the model: {exc}")
    names = [o.name for o in outputs]
    try:
        request = compile_ir(folder).create_infer_request()
        check_vectors(vectors, lambda feed: run_ir(request, feed, names), tolerance)
    except TestVectorError as exc:
        return _without_ir(folder, f"OpenVINO answers differently from ONNX Runtime: {exc}")
    except Exception as exc:  # OpenVINO raises untyped RuntimeErrors
        return _without_ir(folder, f"OpenVINO could not run the model: {exc}")
    return None


def _without_ir(folder: Path, reason: str) -> str:
    for name in (IR_XML_FILE, IR_BIN_FILE):
        (folder / name).unlink(missing_ok=True)
    said = reason.replace(str(folder), "the bundle")[:500]
    log.warning("bundle will offer ONNX Runtime only: %s", said)
    return said


def prepare(
    folder: Path,
    model: bytes | Path,
    reference_npy: bytes | None,
    sample: bytes | None = None,
    tolerance: Tolerance | None = None,
) -> Prepared:
    """Write model (ONNX bytes, or an ONNX file: see :func:`_place`), IR, reference sample
    and test vectors into the empty ``folder``; the
    test vectors come from ``sample`` (inputs the uploader gave) when there is one. IR is
    kept only when it answers the test vectors within ``tolerance``."""
    tolerance = tolerance or Tolerance()
    _place(model, folder)
    session = _session(folder)
    if any(not o.type.startswith("tensor(") for o in session.get_outputs()):
        tensors = without_zipmap((folder / ONNX_FILE).read_bytes())
        if tensors is not None:
            (folder / ONNX_FILE).write_bytes(tensors)
            session = _session(folder)
    inputs = [_spec(n) for n in session.get_inputs()]
    outputs = [_spec(n) for n in session.get_outputs()]
    reference = _load_reference(reference_npy, inputs) if reference_npy is not None else None
    samples = load_samples(sample, inputs) if sample is not None else None
    if reference is not None:
        np.save(folder / REFERENCE_FILE, reference, allow_pickle=False)
    vectors = []
    for seed, batch in enumerate(TEST_VECTOR_BATCHES):
        feed = _example_inputs(inputs, reference, batch, seed, samples)
        results = _probe(session, feed, folder / ONNX_FILE)
        vectors.append(
            TestVector(
                inputs={k: to_wire(v) for k, v in feed.items()},
                outputs={
                    spec.name: to_wire(np.asarray(r))
                    for spec, r in zip(outputs, results, strict=True)
                },
            )
        )
    (folder / TEST_VECTORS_FILE).write_bytes(msgspec.json.encode(vectors))
    # ONNX Runtime's copy of the weights goes before OpenVINO makes its own: a large
    # model's check then needs about two copies in memory, not three (bench_upload.py)
    del session
    note = _openvino(folder, vectors, outputs, tolerance)
    notes = {"openvino": note} if note else {}
    return Prepared(folder, inputs, outputs, reference is not None, tolerance, notes)


def seal(
    prepared: Prepared,
    *,
    name: str,
    version: int,
    metrics: dict[str, float],
    lineage: Lineage,
    key: KeyPair,
) -> Manifest:
    """Hash every file and write the signed ``manifest.json``."""
    files: dict[str, FileEntry] = {}
    for path in sorted(prepared.folder.iterdir()):
        if path.name == MANIFEST_FILE:
            continue
        digest, length = sha256_file(path)
        files[path.name] = FileEntry(sha256=digest, length=length)
    manifest = Manifest(
        name=name,
        version=version,
        created_at=iso_utc(utcnow()),
        inputs=prepared.inputs,
        outputs=prepared.outputs,
        files=files,
        lineage=lineage,
        metrics=metrics,
        reference_sample=REFERENCE_FILE if prepared.has_reference else None,
        tolerance=prepared.tolerance,
        runtime_notes=prepared.runtime_notes,
    )
    signed = json.loads(msgspec.json.encode(manifest))
    (prepared.folder / MANIFEST_FILE).write_bytes(sign_document(signed, key))
    return manifest
