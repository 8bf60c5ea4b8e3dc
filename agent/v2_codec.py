"""Open Inference Protocol v2 (KServe) JSON: decode, check, encode.

Pure functions over bytes and arrays; the HTTP layer only moves bytes. Every
refusal names the field at fault the way a client wrote it, e.g.
``inputs[0].shape``.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np

from appliance.bundle.manifest import Manifest, TensorSpec
from appliance.bundle.tensors import NUMPY_TO_V2, V2_TO_NUMPY, shape_matches
from appliance.errors import InvalidInputError, UnprocessableInputError


class InferInput(msgspec.Struct):
    name: str
    shape: list[int]
    datatype: str
    data: Any
    parameters: dict[str, Any] | None = None


class RequestedOutput(msgspec.Struct):
    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(msgspec.Struct):
    inputs: list[InferInput]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[RequestedOutput] | None = None


_decoder = msgspec.json.Decoder(InferRequest)
_encoder = msgspec.json.Encoder()


def decode_request(body: bytes) -> InferRequest:
    if not body:
        raise InvalidInputError("request body is empty; send a v2 inference request as JSON")
    try:
        return _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise UnprocessableInputError(f"not a v2 inference request: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise InvalidInputError(f"request body is not valid JSON: {exc}") from exc


def _tensor(index: int, given: InferInput, spec: TensorSpec) -> np.ndarray:
    where = f"inputs[{index}]"
    if given.datatype != spec.datatype:
        raise InvalidInputError(
            f"{where}.datatype: input {spec.name!r} takes {spec.datatype}, got {given.datatype!r}"
        )
    if any(d < 0 for d in given.shape) or not shape_matches(spec.shape, given.shape):
        raise InvalidInputError(
            f"{where}.shape: input {spec.name!r} takes {spec.shape} (-1 = any), got {given.shape}"
        )
    try:
        array = np.asarray(given.data, dtype=V2_TO_NUMPY[spec.datatype])
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInputError(f"{where}.data: not {spec.datatype} numbers ({exc})") from exc
    expected = math.prod(given.shape)
    if array.size != expected:
        raise InvalidInputError(
            f"{where}.data: shape {given.shape} needs {expected} elements, got {array.size}"
        )
    return array.reshape(given.shape)


def to_feed(request: InferRequest, manifest: Manifest) -> dict[str, np.ndarray]:
    """Check the request against the model's signature; return the arrays to run."""
    by_name = {spec.name: spec for spec in manifest.inputs}
    feed: dict[str, np.ndarray] = {}
    for index, given in enumerate(request.inputs):
        spec = by_name.get(given.name)
        if spec is None:
            raise InvalidInputError(
                f"inputs[{index}].name: model has no input {given.name!r}; "
                f"inputs are {sorted(by_name)}"
            )
        if given.name in feed:
            raise InvalidInputError(f"inputs[{index}].name: input {given.name!r} given twice")
        feed[given.name] = _tensor(index, given, spec)
    missing = sorted(set(by_name) - set(feed))
    if missing:
        raise InvalidInputError(f"inputs: missing input(s) {missing}")
    batches = {a.shape[0] for a in feed.values() if a.ndim}
    if len(batches) > 1:
        raise InvalidInputError(f"inputs: batch sizes differ across inputs: {sorted(batches)}")
    return feed


def requested_outputs(request: InferRequest, manifest: Manifest) -> list[str]:
    known = [spec.name for spec in manifest.outputs]
    if not request.outputs:
        return known
    names = [o.name for o in request.outputs]
    for index, name in enumerate(names):
        if name not in known:
            raise InvalidInputError(
                f"outputs[{index}].name: model has no output {name!r}; outputs are {known}"
            )
    return names


def encode_response(
    model_name: str,
    model_version: int,
    request_id: str | None,
    results: dict[str, np.ndarray],
    names: list[str],
    parameters: dict[str, Any] | None = None,
) -> bytes:
    outputs = []
    for name in names:
        array = results[name]
        outputs.append(
            {
                "name": name,
                "datatype": NUMPY_TO_V2[array.dtype],
                "shape": list(array.shape),
                "data": array.reshape(-1).tolist(),
            }
        )
    body: dict[str, Any] = {
        "model_name": model_name,
        "model_version": str(model_version),
        "outputs": outputs,
    }
    if request_id is not None:
        body["id"] = request_id
    if parameters:
        body["parameters"] = parameters
    return _encoder.encode(body)


def encode_error(message: str) -> bytes:
    return _encoder.encode({"error": message})


def model_metadata(manifest: Manifest, platform: str) -> dict[str, Any]:
    return {
        "name": manifest.name,
        "versions": [str(manifest.version)],
        "platform": platform,
        "inputs": [msgspec.to_builtins(s) for s in manifest.inputs],
        "outputs": [msgspec.to_builtins(s) for s in manifest.outputs],
    }
