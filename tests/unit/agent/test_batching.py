"""Dynamic batching: requests that arrive together run as one batch, each gets its own
rows back, shapes that cannot be joined are not, and a failed run fails every request
in it (never a wedged waiter)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from agent.batching import Batcher, BatchPolicy, parse_policies
from appliance.errors import ConfigError


class Doubler:
    """A model: ``y = 2 x``, recording the rows of every run."""

    def __init__(self, fail: bool = False) -> None:
        self.runs: list[int] = []
        self.fail = fail

    def __call__(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.runs.append(len(feed["x"]))
        if self.fail:
            raise RuntimeError("the runtime failed")
        return {"y": feed["x"] * 2}


def _together(batcher: Batcher, feeds: list[dict[str, np.ndarray]]) -> list[object]:
    """Submit every feed at once, from its own thread; the answers (or errors) in order."""
    start = threading.Barrier(len(feeds))

    def one(feed: dict[str, np.ndarray]) -> object:
        start.wait()
        try:
            return batcher.infer(feed)["y"]
        except RuntimeError as exc:
            return exc

    with ThreadPoolExecutor(len(feeds)) as pool:
        return list(pool.map(one, feeds))


def test_requests_that_arrive_together_run_as_one_batch_and_get_their_own_rows():
    model = Doubler()
    # A delay no run waits out: the batch runs as soon as its 8 rows are there.
    batcher = Batcher(model, BatchPolicy(max_batch=8, max_delay_s=60), "m")
    feeds = [{"x": np.full((2, 3), i, np.float32)} for i in range(4)]
    answers = _together(batcher, feeds)
    for i, answer in enumerate(answers):
        np.testing.assert_array_equal(answer, np.full((2, 3), 2 * i))
    assert model.runs == [8] and batcher.runs == 1


def test_a_lone_request_runs_after_the_delay_and_a_batch_never_exceeds_its_rows():
    model = Doubler()
    batcher = Batcher(model, BatchPolicy(max_batch=4, max_delay_s=0.001), "m")
    np.testing.assert_array_equal(batcher.infer({"x": np.ones((1, 2))})["y"], [[2, 2]])
    answers = _together(batcher, [{"x": np.full((3, 2), i)} for i in range(3)])
    assert all(np.all(a == 2 * i) for i, a in enumerate(answers))
    assert max(model.runs) <= 4 and sum(model.runs) == 10


def test_inputs_of_other_sizes_beyond_the_batch_axis_are_not_joined():
    model = Doubler()
    batcher = Batcher(model, BatchPolicy(max_batch=4, max_delay_s=0.05), "m")
    answers = _together(batcher, [{"x": np.ones((1, 16))}, {"x": np.ones((1, 32))}])
    assert [a.shape for a in answers] == [(1, 16), (1, 32)]
    assert sorted(model.runs) == [1, 1]


def test_a_failed_run_answers_every_request_in_it_with_the_error():
    model = Doubler(fail=True)
    batcher = Batcher(model, BatchPolicy(max_batch=3, max_delay_s=60), "m")
    answers = _together(batcher, [{"x": np.ones((1, 2))} for _ in range(3)])
    assert all(isinstance(a, RuntimeError) for a in answers)
    model.fail = False
    np.testing.assert_array_equal(batcher.infer({"x": np.ones((3, 2))})["y"], np.full((3, 2), 2))


@pytest.mark.parametrize("entry", ["bert", "bert=1:2", "bert=8:x", "=8:2", "bert=8:5000"])
def test_a_bad_batching_setting_says_how_to_write_it(entry):
    with pytest.raises(ConfigError) as refused:
        parse_policies((entry,))
    assert "name=max_batch:max_delay_ms" in (refused.value.hint or "")


def test_batching_settings_parse_per_model():
    assert parse_policies(("bert=8:2", "small=4:0.5")) == {
        "bert": BatchPolicy(8, 0.002),
        "small": BatchPolicy(4, 0.0005),
    }


def test_with_two_runners_two_batches_run_at_once():
    """One runner per inference worker: a second batch need not wait for the first."""
    both_running = threading.Barrier(2, timeout=30)

    def model(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        both_running.wait()  # a single runner would never get past this
        return {"y": feed["x"]}

    batcher = Batcher(model, BatchPolicy(max_batch=2, max_delay_s=60), "m", runners=2)
    answers = _together(batcher, [{"x": np.full((1, 1), i)} for i in range(4)])
    assert [int(a[0, 0]) for a in answers] == [0, 1, 2, 3]
