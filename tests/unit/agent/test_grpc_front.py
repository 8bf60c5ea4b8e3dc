"""The gRPC front only translates: a ModelInferRequest becomes the request HTTP decodes,
so the same checks apply to both."""

from __future__ import annotations

import numpy as np
import pytest

from agent import v2_codec
from agent.grpc_front import to_request
from agent.grpc_v2 import open_inference_grpc_pb2 as pb
from appliance.bundle.manifest import Lineage, Manifest, TensorSpec
from appliance.errors import InvalidInputError, UnprocessableInputError

MANIFEST = Manifest(
    name="m",
    version=1,
    created_at="2026-12-06T00:00:00Z",
    inputs=[TensorSpec(name="x", datatype="FP32", shape=[-1, 2])],
    outputs=[TensorSpec(name="y", datatype="FP32", shape=[-1, 2])],
    files={},
    lineage=Lineage(),
)


def _message(**kwargs: object) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="m", **kwargs)
    message.inputs.add(name="x", datatype="FP32", shape=[1, 2])
    return message


def test_raw_and_typed_contents_give_the_same_arrays():
    raw = _message()
    raw.raw_input_contents.append(np.array([1.5, -2.0], "<f4").tobytes())
    typed = _message()
    typed.inputs[0].contents.fp32_contents.extend([1.5, -2.0])
    for message in (raw, typed):
        feed = v2_codec.to_feed(to_request(message), MANIFEST)
        np.testing.assert_array_equal(feed["x"], [[1.5, -2.0]])


def test_raw_contents_are_checked_as_binary_tensors_are():
    short = _message()
    short.raw_input_contents.append(b"\x00" * 4)
    with pytest.raises(InvalidInputError, match="needs 8 bytes, got 4"):
        v2_codec.to_feed(to_request(short), MANIFEST)
    nan = _message()
    nan.raw_input_contents.append(np.array([np.nan, 1], "<f4").tobytes())
    with pytest.raises(UnprocessableInputError):
        v2_codec.to_feed(to_request(nan), MANIFEST)
    extra = _message()
    extra.raw_input_contents.extend([b"\x00" * 8, b"\x00" * 8])
    with pytest.raises(InvalidInputError, match="2 given for 1 inputs"):
        to_request(extra)


def test_fp16_has_no_typed_field_and_long_ids_are_refused():
    half = pb.ModelInferRequest(model_name="m")
    half.inputs.add(name="x", datatype="FP16", shape=[1, 2])
    with pytest.raises(InvalidInputError, match="raw_input_contents only"):
        to_request(half)
    with pytest.raises(InvalidInputError, match="at most 128"):
        to_request(_message(id="x" * 129))


def test_bytes_travel_in_bytes_contents_or_raw_contents_alike():
    manifest = Manifest(
        name="m",
        version=1,
        created_at="2026-12-06T00:00:00Z",
        inputs=[TensorSpec(name="x", datatype="BYTES", shape=[-1])],
        outputs=[TensorSpec(name="y", datatype="BYTES", shape=[-1])],
        files={},
        lineage=Lineage(),
    )
    typed = pb.ModelInferRequest(model_name="m")
    typed.inputs.add(name="x", datatype="BYTES", shape=[2]).contents.bytes_contents.extend(
        ["émeu".encode(), b"cat"]
    )
    raw = pb.ModelInferRequest(model_name="m")
    raw.inputs.add(name="x", datatype="BYTES", shape=[2])
    raw.raw_input_contents.append(v2_codec.raw_bytes(np.array(["émeu", "cat"], dtype=object)))
    for message in (typed, raw):
        assert v2_codec.to_feed(to_request(message), manifest)["x"].tolist() == ["émeu", "cat"]
