"""Sample inputs an uploader gives for a model's probes and test vectors.

A model whose inputs must hold particular values (token ids within a vocabulary, a
category index, a mask of a given shape) cannot always be probed with inputs derived from
its signature. The uploader then sends samples, one array per model input with the
examples along the first axis:

* ``.npz`` (``numpy.savez``), one array per input name; or
* JSON: a v2 inference request (``{"inputs": [{"name", "shape", "datatype", "data"}]}``)
  or a plain object of nested lists by input name.

Each array must have the input's rank, its fixed sizes, and values of its kind (no strings,
no floats for an integer input). The bundle's test vectors are then cut from these rows.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np

from appliance.bundle.manifest import TensorSpec
from appliance.bundle.tensors import V2_TO_NUMPY, texts
from appliance.errors import InvalidInputError

PROBE_AXIS = 8
"""The size given to a dynamic axis other than the batch (a sequence, say) in a probe."""
_ACCEPTS = {"b": "b", "i": "biu", "u": "biu", "f": "biuf"}
"""For an input's dtype kind, the kinds of sample array that may be cast to it."""


def load_samples(data: bytes, inputs: list[TensorSpec]) -> dict[str, np.ndarray]:
    """One array per model input, checked against the model's signature."""
    arrays = read_arrays(data)
    missing = [s.name for s in inputs if s.name not in arrays]
    if missing:
        raise InvalidInputError(
            f"sample: no values for input(s) {missing}; the model's inputs are "
            f"{[s.name for s in inputs]}"
        )
    extra = sorted(set(arrays) - {s.name for s in inputs})
    if extra:
        raise InvalidInputError(f"sample: the model has no input(s) {extra}")
    return {spec.name: _checked(spec, arrays[spec.name]) for spec in inputs}


def read_arrays(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` archive or a JSON sample, by name, in the order given."""
    return _npz(data) if data[:4] == b"PK\x03\x04" else _json(data)


def derived_inputs(inputs: list[TensorSpec], batch: int, seed: int) -> dict[str, np.ndarray]:
    """Probe inputs derived from a signature in a way every model accepts: zeros for
    integer and boolean inputs (a token id, a type id, a mask or an index of 0 is always
    in range, where a random one need not be), fixed-seed N(0, 1) for floats; ``batch`` on
    a dynamic first axis and ``PROBE_AXIS`` on other dynamic axes."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for spec in inputs:
        shape = [
            d if d != -1 else batch if i == 0 else PROBE_AXIS for i, d in enumerate(spec.shape)
        ]
        dtype = V2_TO_NUMPY[spec.datatype]
        if dtype.kind == "f":
            out[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif spec.datatype == "BYTES":
            out[spec.name] = np.full(shape, "", dtype=object)
        else:
            out[spec.name] = np.zeros(shape, dtype)
    return out


def sample_batch(
    samples: dict[str, np.ndarray], inputs: list[TensorSpec], batch: int, start: int
) -> dict[str, np.ndarray]:
    """``batch`` rows from ``start`` (wrapping round), on inputs with a dynamic first axis;
    an input with a fixed first axis takes its first rows as they are."""
    out = {}
    for spec in inputs:
        values = samples[spec.name]
        if spec.shape[0] == -1:
            out[spec.name] = np.take(values, np.arange(start, start + batch) % len(values), 0)
        else:
            out[spec.name] = values[: spec.shape[0]].copy()
    return out


def _npz(data: bytes) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise InvalidInputError(f"sample: not a readable .npz archive ({exc})") from exc


def _json(data: bytes) -> dict[str, np.ndarray]:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InvalidInputError(
            "sample: neither an .npz archive nor JSON",
            hint="np.savez('inputs.npz', input_ids=…, …), or a v2 inference request as JSON",
        ) from exc
    if isinstance(document, dict) and isinstance(document.get("inputs"), list):
        pairs = [_v2_tensor(t) for t in document["inputs"]]
    elif isinstance(document, dict):
        pairs = list(document.items())
    else:
        raise InvalidInputError("sample: JSON must be an object of inputs by name")
    arrays = {}
    for name, values in pairs:
        try:
            array = np.asarray(values)
        except ValueError as exc:
            raise InvalidInputError(f"sample.{name}: not a rectangular array ({exc})") from exc
        arrays[str(name)] = array
    return arrays


def _v2_tensor(tensor: Any) -> tuple[str, Any]:
    if not isinstance(tensor, dict) or not {"name", "shape", "data"} <= set(tensor):
        raise InvalidInputError("sample: each of 'inputs' needs name, shape and data")
    try:
        return str(tensor["name"]), np.asarray(tensor["data"]).reshape(tensor["shape"])
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"sample.{tensor['name']}: data does not fit shape") from exc


def _checked(spec: TensorSpec, values: np.ndarray) -> np.ndarray:
    where = f"sample.{spec.name}"
    target = V2_TO_NUMPY[spec.datatype]
    accepts = "OUS" if spec.datatype == "BYTES" else _ACCEPTS.get(target.kind, "")
    if values.dtype.kind not in accepts or values.size == 0:
        raise InvalidInputError(
            f"{where}: {values.dtype} values (or none) do not suit a {spec.datatype} input"
        )
    if values.ndim != len(spec.shape) or any(
        want not in (-1, got) for want, got in zip(spec.shape[1:], values.shape[1:], strict=True)
    ):
        raise InvalidInputError(
            f"{where}: shape {list(values.shape)} does not fit the input's {spec.shape} "
            "(examples along the first axis)"
        )
    if spec.datatype == "BYTES":
        return texts(values, where).reshape(values.shape)
    if target.kind in "iu" and values.dtype.kind in "iu":
        limits = np.iinfo(target)
        if values.min() < limits.min or values.max() > limits.max:
            raise InvalidInputError(f"{where}: values out of range for {spec.datatype}")
    cast: np.ndarray = values.astype(target)
    if target.kind == "f" and not np.all(np.isfinite(cast)):
        raise InvalidInputError(f"{where}: values must be finite numbers")
    return cast
