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
}
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
}


def v2_datatype(array: np.ndarray) -> str:
    try:
        return NUMPY_TO_V2[array.dtype]
    except KeyError as exc:
        raise InvalidInputError(f"unsupported tensor dtype {array.dtype}") from exc


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
    dtype = V2_TO_NUMPY[tensor["datatype"]]
    return np.asarray(tensor["data"], dtype=dtype).reshape(tensor["shape"])
