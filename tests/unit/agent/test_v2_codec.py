"""The v2 request codec refuses what would poison a model or the drift window."""

from __future__ import annotations

import json

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


# -- the binary tensor data extension --------------------------------------------------------


def _binary(datatype: str, raw: bytes, size: int | None = None) -> tuple[bytes, int]:
    head = (
        '{"inputs": [{"name": "input", "shape": [1, 2], "datatype": "'
        + datatype
        + '", "parameters": {"binary_data_size": '
        + str(len(raw) if size is None else size)
        + "}}]}"
    ).encode()
    return head + raw, len(head)


@pytest.mark.parametrize(
    "datatype, values",
    [
        ("FP32", np.array([[1.5, -2.0]], np.float32)),
        ("FP16", np.array([[0.5, 8.0]], np.float16)),
        ("INT64", np.array([[-3, 2**40]], np.int64)),
        ("UINT8", np.array([[0, 255]], np.uint8)),
        ("BOOL", np.array([[True, False]])),
    ],
)
def test_binary_tensors_decode_to_the_same_arrays(datatype, values):
    body, length = _binary(datatype, values.astype(values.dtype.newbyteorder("<")).tobytes())
    feed = v2_codec.to_feed(v2_codec.decode_request(body, length), _manifest(datatype))
    np.testing.assert_array_equal(feed["input"], values)
    assert feed["input"].dtype == values.dtype


@pytest.mark.parametrize(
    "raw, size, length_delta, message",
    [
        (b"\x00" * 4, None, 0, "needs 8 bytes, got 4"),
        (b"\x00" * 8, 12, 0, "the body ends before them"),
        (b"\x00" * 12, 8, 0, "4 byte(s) after the last input"),
        (b"\x00" * 8, None, 10_000, "not within"),
    ],
)
def test_binary_data_that_does_not_add_up_is_400(raw, size, length_delta, message):
    body, length = _binary("FP32", raw, size)
    with pytest.raises(InvalidInputError) as refused:
        v2_codec.to_feed(v2_codec.decode_request(body, length + length_delta), _manifest())
    assert message in str(refused.value)


def test_binary_nan_is_refused_as_json_nan_is():
    body, length = _binary("FP32", np.array([np.nan, 1], np.float32).tobytes())
    with pytest.raises(UnprocessableInputError):
        v2_codec.to_feed(v2_codec.decode_request(body, length), _manifest())


def test_outputs_asked_for_in_binary_come_back_after_the_json_header():
    request = v2_codec.decode_request(
        b'{"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}],'
        b' "parameters": {"binary_data_output": true}}'
    )
    out = np.array([[0.25, 0.75]], np.float32)
    answer = v2_codec.encode_response(
        "m", 1, None, {"out": out}, ["out"], None, v2_codec.binary_outputs(request, ["out"])
    )
    assert answer.header_length is not None
    header = json.loads(answer.body[: answer.header_length])
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 8}
    assert "data" not in header["outputs"][0]
    assert np.frombuffer(answer.body[answer.header_length :], "<f4").tolist() == [0.25, 0.75]
    json_only = v2_codec.decode_request(_request("[1, 2]"))
    assert v2_codec.binary_outputs(json_only, ["out"]) == set()


def _texts(*words: bytes) -> bytes:
    return b"".join(len(w).to_bytes(4, "little") + w for w in words)


def test_bytes_arrive_as_json_strings_or_length_prefixed_binary_and_answer_alike():
    from_json = _feed(_request('["caf\\u00e9", ""]', "BYTES"), "BYTES")["input"]
    body, length = _binary("BYTES", _texts("café".encode(), b""))
    from_binary = v2_codec.to_feed(v2_codec.decode_request(body, length), _manifest("BYTES"))
    for feed in (from_json, from_binary["input"]):
        assert feed.dtype == object and feed.tolist() == [["café", ""]]
    answer = v2_codec.encode_response("m", 1, None, {"out": from_json}, ["out"], None, {"out"})
    assert answer.body[answer.header_length :] == _texts("café".encode(), b"")
    plain = json.loads(v2_codec.encode_response("m", 1, None, {"out": from_json}, ["out"]).body)
    assert plain["outputs"][0] == {
        "name": "out",
        "datatype": "BYTES",
        "shape": [1, 2],
        "data": ["café", ""],
    }


@pytest.mark.parametrize(
    "raw, says",
    [
        (_texts(b"a"), "needs 2 BYTES elements, got 1"),
        (_texts(b"a", b"b", b"c"), "needs 2 BYTES elements, got 3"),
        (_texts(b"a") + b"\x05\x00", "ends inside an element's length"),
        (_texts(b"a") + b"\x09\x00\x00\x00abc", "runs past the data"),
        (_texts(b"a", b"\xff\xfe"), "element 1 is not UTF-8"),
    ],
)
def test_bytes_binary_data_that_does_not_add_up_is_400(raw, says):
    body, length = _binary("BYTES", raw)
    with pytest.raises(InvalidInputError, match=says):
        v2_codec.to_feed(v2_codec.decode_request(body, length), _manifest("BYTES"))


def test_bytes_take_strings_only():
    with pytest.raises(InvalidInputError, match="BYTES takes strings, got int"):
        _feed(_request('["a", 5]', "BYTES"), "BYTES")
