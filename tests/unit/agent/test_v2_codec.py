"""The v2 request codec refuses what would poison a model or the drift window."""

from __future__ import annotations

import numpy as np
import pytest

from agent import v2_codec
from appliance.bundle.manifest import Lineage, Manifest, TensorSpec
from appliance.errors import InvalidInputError, UnprocessableInputError


def _manifest(datatype: str = "FP32") -> Manifest:
    return Manifest(
        name="m",
        version=1,
        created_at="2026-12-06T00:00:00Z",
        inputs=[TensorSpec(name="input", datatype=datatype, shape=[-1, 2])],
        outputs=[TensorSpec(name="out", datatype="FP32", shape=[-1, 2])],
        files={},
        lineage=Lineage(),
    )


def _request(data: str, datatype: str = "FP32") -> bytes:
    """A v2 request for one [1, 2] input whose ``data`` is the JSON text given."""
    head = '{"inputs": [{"name": "input", "shape": [1, 2], "datatype": "' + datatype
    return (head + '", "data": ' + data + "}]}").encode()


def _feed(body: bytes, datatype: str = "FP32", **kwargs: bool) -> dict[str, np.ndarray]:
    return v2_codec.to_feed(v2_codec.decode_request(body), _manifest(datatype), **kwargs)


@pytest.mark.parametrize(
    ("data", "error", "says"),
    [
        ('["nan", 1.0]', InvalidInputError, "got strings"),
        ('["1.5", "2"]', InvalidInputError, "got strings"),
        ("[1e39, 1.0]", UnprocessableInputError, "too large for FP32"),
        ("[1e999, 1.0]", UnprocessableInputError, "out of range"),  # JSON has no infinity
        ("[[1.0], 2.0]", InvalidInputError, "FP32"),
        ('[true, "x"]', InvalidInputError, "FP32"),
    ],
)
def test_floating_inputs_must_be_finite_numbers(data, error, says):
    with pytest.raises(error, match=says):
        _feed(_request(data))


def test_finite_numbers_pass_and_a_model_opted_in_takes_infinity():
    assert _feed(_request("[1, 2.5]"))["input"].tolist() == [[1.0, 2.5]]
    assert np.isinf(_feed(_request("[1e39, 2.0]"), allow_non_finite=True)["input"][0, 0])
    with pytest.raises(UnprocessableInputError, match="NaN or infinite"):
        _feed(_request("[70000, 2.0]", "FP16"), "FP16")


def test_integer_inputs_take_integers_within_their_range():
    assert _feed(_request("[1, 2]", "INT64"), "INT64")["input"].dtype == np.int64
    with pytest.raises(InvalidInputError, match="takes numbers, got float64"):
        _feed(_request("[1.5, 2]", "INT64"), "INT64")
    with pytest.raises(InvalidInputError, match="range"):
        _feed(_request("[300, 2]", "UINT8"), "UINT8")
    with pytest.raises(InvalidInputError):
        _feed(_request(f"[{2**70}, 2]", "INT64"), "INT64")


def test_a_body_nested_thousands_deep_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="nests too deeply"):
        v2_codec.decode_request(_request("[" * 100_000 + "]" * 100_000))
