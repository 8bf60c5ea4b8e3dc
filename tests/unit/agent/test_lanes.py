"""Inference lanes: off the event loop, bounded per model, answered 429 or 504 in time."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from agent.lanes import InferenceLanes
from appliance.errors import BusyError, TimedOutError


def test_work_runs_off_the_event_loop_and_the_loop_stays_free():
    async def scenario() -> None:
        lanes = InferenceLanes(workers=1, queue=0)
        started, release = threading.Event(), threading.Event()

        def blocking() -> str:
            started.set()
            release.wait(30)
            return threading.current_thread().name

        running = asyncio.ensure_future(lanes.run("m", blocking))
        await asyncio.to_thread(started.wait, 30)
        # The loop still runs other coroutines while the model computes.
        assert await asyncio.sleep(0, result="loop is free") == "loop is free"
        release.set()
        assert (await running).startswith("infer-m")

    asyncio.run(scenario())


def test_a_full_lane_refuses_at_once_and_other_models_are_not_held():
    async def scenario() -> None:
        lanes = InferenceLanes(workers=1, queue=1)
        release = threading.Event()
        held = [asyncio.ensure_future(lanes.run("slow", lambda: release.wait(30))) for _ in "ab"]
        await asyncio.sleep(0)
        assert lanes.admitted("slow") == 2
        with pytest.raises(BusyError, match="2 requests running or waiting") as busy:
            await lanes.run("slow", lambda: True)
        assert busy.value.retry_after_s >= 1
        assert await lanes.run("fast", lambda: "answered") == "answered"
        release.set()
        await asyncio.gather(*held)
        assert lanes.admitted("slow") == 0

    asyncio.run(scenario())


def test_a_request_past_its_time_is_504_and_keeps_its_place_until_the_work_ends():
    async def scenario() -> None:
        lanes = InferenceLanes(workers=1, queue=0, timeout_s=0.05)
        release, finished = threading.Event(), threading.Event()

        def overrun() -> None:
            release.wait(30)
            finished.set()

        with pytest.raises(TimedOutError, match="did not answer within"):
            await lanes.run("m", overrun)
        assert lanes.admitted("m") == 1  # the thread still works: the bound still counts it
        release.set()
        await asyncio.to_thread(finished.wait, 30)
        for _ in range(100):
            if lanes.admitted("m") == 0:
                break
            await asyncio.sleep(0.01)
        assert lanes.admitted("m") == 0

    asyncio.run(scenario())


def test_names_no_model_has_get_no_lane():
    async def scenario() -> None:
        lanes = InferenceLanes(known=lambda name: name == "served")
        assert await lanes.run("other", threading.current_thread) is threading.main_thread()
        assert lanes.admitted("other") == 0

    asyncio.run(scenario())


def test_no_workers_runs_on_the_event_loop_as_before():
    async def scenario() -> None:
        lanes = InferenceLanes(workers=0)
        assert await lanes.run("m", threading.current_thread) is threading.main_thread()

    asyncio.run(scenario())


def _busy(seconds: float) -> str:
    """CPU work (not a sleep: the lane measures CPU time); the thread it ran on."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
    return threading.current_thread().name


def test_a_cheap_model_answers_requests_of_its_usual_size_on_the_loop():
    async def scenario() -> list[str]:
        lanes = InferenceLanes(inline_below_s=0.01)
        ran = [await lanes.run("tiny", lambda: _busy(0), size=100) for _ in range(3)]
        ran.append(await lanes.run("tiny", lambda: _busy(0), size=1000))  # 10x the usual
        return ran

    first, second, third, large = asyncio.run(scenario())
    loop_thread = threading.current_thread().name
    assert first.startswith("infer-tiny")  # nothing measured yet: to a thread
    assert second == third == loop_thread
    assert large.startswith("infer-tiny")


def test_a_model_costlier_than_the_bound_or_batched_stays_off_the_loop():
    async def scenario(lanes: InferenceLanes, model: str, cost_s: float) -> set[str]:
        return {await lanes.run(model, lambda: _busy(cost_s), size=100) for _ in range(4)}

    slow = asyncio.run(scenario(InferenceLanes(inline_below_s=0.002), "slow", 0.01))
    assert all(name.startswith("infer-slow") for name in slow)
    batched = InferenceLanes(inline_below_s=0.01, batched=lambda name: name == "b")
    assert all(name.startswith("infer-b") for name in asyncio.run(scenario(batched, "b", 0)))
