"""Open Inference Protocol v2 (KServe) over HTTP: decode, check, encode.

Pure functions over bytes and arrays; the HTTP layer only moves bytes. Every
refusal names the field at fault the way a client wrote it, e.g.
``inputs[0].shape``.

The binary tensor data extension (Triton's, which ``tritonclient`` uses by default) is
understood both ways: a request whose ``Inference-Header-Content-Length`` header says how
long its JSON part is carries the tensors whose ``parameters.binary_data_size`` is set as
raw little-endian bytes after the JSON, in input order; outputs asked for with
``parameters.binary_data`` (or all, with the request's ``binary_data_output``) come back
the same way, the answer's own ``Inference-Header-Content-Length`` saying where its JSON
ends.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import msgspec
import numpy as np

from appliance.bundle.manifest import Manifest, TensorSpec
from appliance.bundle.tensors import (
    V2_TO_NUMPY,
    pack_texts,
    shape_matches,
    texts,
    unpack_texts,
    v2_datatype,
)
from appliance.errors import InvalidInputError, UnprocessableInputError, nested_too_deeply

MAX_REQUEST_ID = 128
"""The longest request id a client may choose; the agent issues one when none is given."""


class Raw(bytes):
    """A tensor's data as the binary extension carried it (never what JSON decodes to)."""


class InferInput(msgspec.Struct):
    name: str
    shape: list[int]
    datatype: str
    data: Any = None
    """JSON numbers (nested or flat); a :class:`Raw` when the binary extension carried them."""
    parameters: dict[str, Any] | None = None


class Answer(NamedTuple):
    body: bytes
    header_length: int | None = None
    """Where the JSON part of ``body`` ends when binary outputs follow it."""


class RequestedOutput(msgspec.Struct):
    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(msgspec.Struct):
    inputs: list[InferInput]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[RequestedOutput] | None = None


class InferOutput(msgspec.Struct):
    name: str
    datatype: str
    shape: list[int]
    data: list[Any]


class InferResponse(msgspec.Struct):
    """What :func:`encode_response` writes (documented in the agent's OpenAPI)."""

    model_name: str
    model_version: str
    outputs: list[InferOutput]
    id: str | None = None
    """The client's id, or one the agent issued for a request under an A/B experiment."""
    parameters: dict[str, Any] | None = None
    """``experiment``, ``variant`` and ``sticky`` when an experiment chose the version."""


_decoder = msgspec.json.Decoder(InferRequest)
_encoder = msgspec.json.Encoder()


def decode_request(body: bytes, header_length: int | None = None) -> InferRequest:
    """The request in ``body``; with ``header_length`` (``Inference-Header-Content-Length``),
    its JSON part is that long and binary tensor data follows it."""
    if not body:
        raise InvalidInputError("request body is empty; send a v2 inference request as JSON")
    if header_length is not None and not 0 < header_length <= len(body):
        raise InvalidInputError(
            f"Inference-Header-Content-Length: {header_length} is not within the "
            f"{len(body)}-byte body"
        )
    binary = memoryview(body)[header_length:] if header_length is not None else None
    if header_length is not None:
        body = body[:header_length]
    try:
        request = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise UnprocessableInputError(f"not a v2 inference request: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise InvalidInputError(f"request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise nested_too_deeply() from exc
    check_request_id(request)
    _attach_binary(request, binary)
    return request


def check_request_id(request: InferRequest) -> None:
    """A client-chosen request id is at most ``MAX_REQUEST_ID`` characters (400)."""
    if request.id is not None and len(request.id) > MAX_REQUEST_ID:
        raise InvalidInputError(
            f"id: at most {MAX_REQUEST_ID} characters, got {len(request.id)}",
            hint="leave it out and the agent issues one",
        )


def _attach_binary(request: InferRequest, binary: memoryview | None) -> None:
    """Hand each input that says ``binary_data_size`` its bytes, in order; every byte
    after the JSON must belong to one."""
    offset = 0
    for index, given in enumerate(request.inputs):
        size = (given.parameters or {}).get("binary_data_size")
        if size is None:
            if given.data is None:
                raise UnprocessableInputError(
                    f"inputs[{index}].data: missing (JSON numbers, or binary data sized by "
                    "parameters.binary_data_size)"
                )
            continue
        where = f"inputs[{index}].parameters.binary_data_size"
        if binary is None:
            raise InvalidInputError(
                f"{where}: binary data needs the Inference-Header-Content-Length header"
            )
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidInputError(f"{where}: must be a byte count")
        if given.data is not None:
            raise InvalidInputError(f"inputs[{index}]: both data and binary data given")
        if offset + size > len(binary):
            raise InvalidInputError(f"{where}: {size} bytes, but the body ends before them")
        given.data = Raw(binary[offset : offset + size])
        offset += size
    if binary is not None and offset != len(binary):
        raise InvalidInputError(
            f"binary data: {len(binary) - offset} byte(s) after the last input's"
        )


_ACCEPTS: dict[str, str] = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}
"""For a target dtype kind, the kinds of array that JSON numbers may arrive as (numpy's own
inference from the JSON values): never a string, never a float for an integer input."""


def _numbers(data: Any, target: np.dtype[Any], where: str, datatype: str) -> np.ndarray:
    """``data`` as an array of ``target``; strings, mixed or out-of-range values refused.

    ``np.asarray(["nan", "1e3"], dtype=float32)`` would read the strings as numbers, and a
    float or a huge integer cast to an integer type wraps silently; both are refused here.
    """
    try:
        raw = np.asarray(data)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInputError(f"{where}.data: not {datatype} numbers ({exc})") from exc
    if raw.size and raw.dtype.kind not in _ACCEPTS[target.kind]:
        found = {"U": "strings", "S": "strings", "O": "mixed or too large values"}.get(
            raw.dtype.kind, f"{raw.dtype} values"
        )
        raise InvalidInputError(f"{where}.data: {datatype} takes numbers, got {found}")
    if raw.size and target.kind in "iu":
        bounds = np.iinfo(target)
        if raw.min() < bounds.min or raw.max() > bounds.max:
            raise InvalidInputError(
                f"{where}.data: values outside {datatype}'s range {bounds.min}..{bounds.max}"
            )
    with np.errstate(over="ignore"):  # a float too large for FP32 becomes inf: refused later
        return raw.astype(target, copy=False)


def _from_bytes(raw: Raw, target: np.dtype[Any], where: str, shape: list[int]) -> np.ndarray:
    """Binary tensor data: row-major, little-endian; BOOL one byte (0 or 1) each."""
    itemsize = 1 if target.kind == "b" else target.itemsize
    expected = math.prod(shape) * itemsize
    if len(raw) != expected:
        raise InvalidInputError(
            f"{where}.parameters.binary_data_size: shape {shape} needs {expected} bytes, "
            f"got {len(raw)}"
        )
    if target.kind == "b":
        values = np.frombuffer(raw, np.uint8)
        if values.size and values.max() > 1:
            raise InvalidInputError(f"{where}: BOOL bytes must be 0 or 1")
        return values.astype(np.bool_)
    return np.frombuffer(raw, target.newbyteorder("<")).astype(target, copy=False)


def _tensor(
    index: int, given: InferInput, spec: TensorSpec, *, allow_non_finite: bool = False
) -> np.ndarray:
    where = f"inputs[{index}]"
    if given.datatype != spec.datatype:
        raise InvalidInputError(
            f"{where}.datatype: input {spec.name!r} takes {spec.datatype}, got {given.datatype!r}"
        )
    if any(d < 0 for d in given.shape) or not shape_matches(spec.shape, given.shape):
        raise InvalidInputError(
            f"{where}.shape: input {spec.name!r} takes {spec.shape} (-1 = any), got {given.shape}"
        )
    target = V2_TO_NUMPY[spec.datatype]
    expected = math.prod(given.shape)
    if spec.datatype == "BYTES":
        array = (
            unpack_texts(given.data, expected, f"{where}.data")
            if isinstance(given.data, Raw)
            else texts(given.data, f"{where}.data")
        )
    elif isinstance(given.data, Raw):
        array = _from_bytes(given.data, target, where, given.shape)
    else:
        array = _numbers(given.data, target, where, spec.datatype)
    if array.size != expected:
        raise InvalidInputError(
            f"{where}.data: shape {given.shape} needs {expected} elements, got {array.size}"
        )
    if array.dtype.kind == "f" and not allow_non_finite and not np.isfinite(array).all():
        raise UnprocessableInputError(
            f"{where}.data: NaN or infinite values (or numbers too large for {spec.datatype})",
            hint="send finite numbers; a model that takes NaN for 'missing' is opted in with "
            "APPLIANCE_ALLOW_NON_FINITE on the agent",
        )
    return array.reshape(given.shape)


def to_feed(
    request: InferRequest, manifest: Manifest, *, allow_non_finite: bool = False
) -> dict[str, np.ndarray]:
    """Check the request against the model's signature; return the arrays to run.

    Floating inputs must be finite unless the model is opted in (``allow_non_finite``).
    """
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
        feed[given.name] = _tensor(index, given, spec, allow_non_finite=allow_non_finite)
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


def raw_bytes(array: np.ndarray) -> bytes:
    """A tensor as binary data travels (HTTP binary extension, gRPC raw contents):
    row-major, little-endian; BYTES elements each after its 4-byte length."""
    if array.dtype.kind in "OUS":
        return pack_texts(array)
    return np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()


def binary_outputs(request: InferRequest, names: list[str]) -> set[str]:
    """The outputs to send as binary data: those asked for with ``binary_data``, and with
    the request's ``binary_data_output`` every one not asked for otherwise."""
    default = bool((request.parameters or {}).get("binary_data_output", False))
    asked = {o.name: (o.parameters or {}).get("binary_data") for o in request.outputs or []}
    return {n for n in names if (asked.get(n) if asked.get(n) is not None else default)}


def encode_response(
    model_name: str,
    model_version: int,
    request_id: str | None,
    results: dict[str, np.ndarray],
    names: list[str],
    parameters: dict[str, Any] | None = None,
    binary: set[str] | frozenset[str] = frozenset(),
) -> Answer:
    outputs = []
    tails: list[bytes] = []
    for name in names:
        array = results[name]
        tensor: dict[str, Any] = {
            "name": name,
            "datatype": v2_datatype(array),
            "shape": list(array.shape),
        }
        if name in binary:
            raw = raw_bytes(array)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            tails.append(raw)
        else:
            tensor["data"] = array.reshape(-1).tolist()
        outputs.append(tensor)
    body: dict[str, Any] = {
        "model_name": model_name,
        "model_version": str(model_version),
        "outputs": outputs,
    }
    if request_id is not None:
        body["id"] = request_id
    if parameters:
        body["parameters"] = parameters
    header = _encoder.encode(body)
    if not tails:
        return Answer(header)
    return Answer(header + b"".join(tails), len(header))


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
