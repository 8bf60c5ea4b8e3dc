"""Sample inputs an uploader gives for a model's probes: .npz or JSON, checked against the
model's signature with the field at fault named."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from appliance.bundle.manifest import TensorSpec
from appliance.errors import InvalidInputError
from hub.registry.samples import load_samples, sample_batch

INPUTS = [TensorSpec("input_ids", "INT64", [-1, -1]), TensorSpec("score", "FP32", [-1, 3])]


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_npz_and_both_json_forms_give_the_same_arrays():
    ids, score = np.array([[5, 6], [7, 8]]), np.ones((2, 3))
    from_npz = load_samples(_npz(input_ids=ids, score=score), INPUTS)
    plain = json.dumps({"input_ids": ids.tolist(), "score": score.tolist()}).encode()
    v2 = json.dumps(
        {
            "inputs": [
                {"name": "input_ids", "shape": [2, 2], "datatype": "INT64", "data": [5, 6, 7, 8]},
                {"name": "score", "shape": [2, 3], "datatype": "FP32", "data": [1] * 6},
            ]
        }
    ).encode()
    for loaded in (from_npz, load_samples(plain, INPUTS), load_samples(v2, INPUTS)):
        assert loaded["input_ids"].dtype == np.int64 and loaded["score"].dtype == np.float32
        np.testing.assert_array_equal(loaded["input_ids"], ids)


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"input_ids": [[1]]}, "no values for input(s) ['score']"),
        ({"input_ids": [[1]], "score": [[1, 2, 3]], "extra": [1]}, "no input(s) ['extra']"),
        ({"input_ids": [[1.5]], "score": [[1, 2, 3]]}, "sample.input_ids: float64"),
        ({"input_ids": [["a"]], "score": [[1, 2, 3]]}, "sample.input_ids: <U1"),
        ({"input_ids": [[1]], "score": [[1, 2]]}, "sample.score: shape [1, 2]"),
        ({"input_ids": [1], "score": [[1, 2, 3]]}, "sample.input_ids: shape [1]"),
        ({"input_ids": [[2**70]], "score": [[1, 2, 3]]}, "sample.input_ids"),
    ],
)
def test_samples_that_do_not_fit_the_model_are_refused_by_field(arrays, message):
    with pytest.raises(InvalidInputError) as refused:
        load_samples(json.dumps(arrays).encode(), INPUTS)
    assert message in str(refused.value)


def test_a_file_that_is_neither_npz_nor_json_is_refused():
    with pytest.raises(InvalidInputError, match=r"neither an \.npz archive nor JSON"):
        load_samples(b"\x00\x01 binary", INPUTS)
    with pytest.raises(InvalidInputError, match=r"not a readable \.npz"):
        load_samples(b"PK\x03\x04 broken zip", INPUTS)


def test_batches_wrap_round_the_rows_given():
    samples = {"input_ids": np.array([[1], [2], [3]]), "score": np.zeros((3, 3), np.float32)}
    batch = sample_batch(samples, INPUTS, 4, 1)
    assert batch["input_ids"].ravel().tolist() == [2, 3, 1, 2]


def test_bytes_inputs_take_strings_from_npz_and_json_and_numbers_are_refused():
    texts = [TensorSpec("text", "BYTES", [-1])]
    for data in (
        _npz(text=np.array(["cat", "émeu"])),
        json.dumps({"text": ["cat", "émeu"]}).encode(),
    ):
        loaded = load_samples(data, texts)["text"]
        assert loaded.dtype == object and loaded.tolist() == ["cat", "émeu"]
    with pytest.raises(InvalidInputError, match="do not suit a BYTES input"):
        load_samples(_npz(text=np.array([1, 2])), texts)
