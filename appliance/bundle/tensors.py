"""Tensor datatypes as the Open Inference Protocol (KServe v2) names them.

One table maps v2 datatype names to NumPy dtypes and ONNX type strings, so the
hub (reading a model's signature) and the agent (checking requests) agree.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from appliance.errors import InvalidInputError

V2_TO_NUMPY: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
"""BYTES tensors are object arrays of ``str`` (what ONNX Runtime takes and gives for
``tensor(string)``); on the wire each element is UTF-8."""
NUMPY_TO_V2: dict[np.dtype[Any], str] = {v: k for k, v in V2_TO_NUMPY.items()}

ONNX_TO_V2: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


def v2_datatype(array: np.ndarray) -> str:
    if array.dtype.kind in "OUS":
        return "BYTES"
    try:
        return NUMPY_TO_V2[array.dtype]
    except KeyError as exc:
        raise InvalidInputError(f"unsupported tensor dtype {array.dtype}") from exc


def texts(values: Any, where: str) -> np.ndarray:
    """A flat object array of ``str`` from BYTES elements given as text or UTF-8 bytes."""
    flat = np.asarray(values, dtype=object).reshape(-1)
    out = np.empty(flat.size, dtype=object)
    for i, value in enumerate(flat):
        if isinstance(value, bytes | bytearray | memoryview):
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInputError(f"{where}: BYTES element {i} is not UTF-8") from exc
        elif not isinstance(value, str):
            raise InvalidInputError(
                f"{where}: BYTES takes strings, got {type(value).__name__} at element {i}"
            )
        out[i] = value
    return out


def pack_texts(array: np.ndarray) -> bytes:
    """BYTES as binary data travels (Triton's layout): each element's UTF-8 length as a
    4-byte little-endian integer, then its bytes."""
    parts = []
    for value in array.reshape(-1):
        data = value if isinstance(value, bytes) else str(value).encode("utf-8")
        parts += [len(data).to_bytes(4, "little"), data]
    return b"".join(parts)


def unpack_texts(raw: bytes | memoryview, count: int, where: str) -> np.ndarray:
    """The ``count`` elements of BYTES binary data, as :func:`texts` gives them."""
    view, offset, out = memoryview(raw), 0, list[memoryview]()
    while offset < len(view):
        if offset + 4 > len(view):
            raise InvalidInputError(f"{where}: BYTES data ends inside an element's length")
        size = int.from_bytes(view[offset : offset + 4], "little")
        if offset + 4 + size > len(view):
            raise InvalidInputError(f"{where}: BYTES element {len(out)} runs past the data")
        out.append(view[offset + 4 : offset + 4 + size])
        offset += 4 + size
    if len(out) != count:
        raise InvalidInputError(f"{where}: shape needs {count} BYTES elements, got {len(out)}")
    return texts(out, where) if out else np.empty(0, dtype=object)


def shape_matches(expected: list[int], actual: list[int]) -> bool:
    """True if ``actual`` fits ``expected``, where -1 in ``expected`` is any size."""
    return len(expected) == len(actual) and all(
        e == -1 or e == a for e, a in zip(expected, actual, strict=True)
    )


def to_wire(array: np.ndarray) -> dict[str, Any]:
    """A tensor as v2 JSON: datatype, shape and row-major flat data."""
    return {
        "datatype": v2_datatype(array),
        "shape": list(array.shape),
        "data": array.reshape(-1).tolist(),
    }


def from_wire(tensor: dict[str, Any]) -> np.ndarray:
    if tensor["datatype"] == "BYTES":
        return texts(tensor["data"], "tensor").reshape(tensor["shape"])
    dtype = V2_TO_NUMPY[tensor["datatype"]]
    return np.asarray(tensor["data"], dtype=dtype).reshape(tensor["shape"])
