"""The agent's A/B router: bounded memory for request ids, outcomes that fit the metric."""

from __future__ import annotations

import pytest

from agent.experiments import ExperimentRouter
from agent.request_ledger import MAX_REMEMBERED_BYTES
from appliance.errors import NotFoundError, UnprocessableInputError
from appliance.trust.layout import ExperimentSpec, VariantSpec


def _spec(metric: str = "rate", **bounds: float) -> dict[str, ExperimentSpec]:
    variants = [
        VariantSpec(name="a", version=1, weight=1),
        VariantSpec(name="b", version=2, weight=1),
    ]
    return {"ab": ExperimentSpec(model="m", salt="s", variants=variants, metric=metric, **bounds)}


def test_remembered_ids_are_bounded_in_bytes_and_freed_when_the_experiment_stops():
    """Issue 14, finding 5: 300 requests with 1 MiB ids held 300 MB after the experiment."""
    router = ExperimentRouter()
    router.update(_spec())
    routing = router.route("m", "subject")
    assert routing is not None
    for i in range(300):
        router.remember(f"{i:04d}" + "x" * 120, routing)
    kept, held = router.remembered()
    assert kept == 300 and held <= MAX_REMEMBERED_BYTES
    for i in range(200_000):
        router.remember(f"id-{i}", routing)
    kept, held = router.remembered()
    assert held <= MAX_REMEMBERED_BYTES and kept < 200_000
    router.update({})  # the experiment stopped
    assert router.remembered() == (0, 0)


def test_outcomes_must_suit_the_metric_and_a_refused_one_keeps_the_id():
    router = ExperimentRouter()
    router.update(_spec("rate"))
    routing = router.route("m", "subject")
    assert routing is not None
    router.remember("r1", routing)
    for bad in (0.5, -1e6, 1e308, float("nan")):
        with pytest.raises(UnprocessableInputError):
            router.feedback("r1", bad)
    assert router.feedback("r1", 1.0) == ("ab", routing.variant)
    with pytest.raises(NotFoundError):
        router.feedback("r1", 1.0)  # once
    router.update(_spec("mean"))
    router.remember("r2", routing)
    with pytest.raises(UnprocessableInputError):
        router.feedback("r2", 1e308)
    assert router.feedback("r2", -12.5) == ("ab", routing.variant)


def test_a_mean_experiment_takes_outcomes_within_the_bounds_its_creator_set():
    router = ExperimentRouter()
    router.update(_spec("mean", outcome_min=0.0, outcome_max=500.0))
    routing = router.route("m", "subject")
    assert routing is not None
    router.remember("r1", routing)
    for bad in (-1e6, -1.0, 500.5):
        with pytest.raises(UnprocessableInputError, match="within 0 … 500"):
            router.feedback("r1", bad)
    assert router.feedback("r1", 499.0) == ("ab", routing.variant)


def test_processes_sharing_a_ledger_count_feedback_once_wherever_it_arrives(tmp_path, monkeypatch):
    """--workers N: feedback may reach another process than the one that answered."""
    from agent import request_ledger
    from agent.request_ledger import SharedLedger

    path = tmp_path / "requests.sqlite"
    answering, told = ExperimentRouter(SharedLedger(path)), ExperimentRouter(SharedLedger(path))
    for router in (answering, told):
        router.update(_spec())
    routing = answering.route("m", "subject")
    assert routing is not None
    answering.remember("r1", routing)
    with pytest.raises(UnprocessableInputError):
        told.feedback("r1", 0.5)  # refused: the id stays
    assert told.feedback("r1", 1.0) == ("ab", routing.variant)
    for router in (answering, told):
        with pytest.raises(NotFoundError):
            router.feedback("r1", 1.0)  # once, across processes
    monkeypatch.setattr(request_ledger, "MAX_REMEMBERED", 10)
    monkeypatch.setattr(request_ledger, "_PRUNE_EVERY", 5)
    for i in range(40):
        answering.remember(f"id-{i}", routing)
    kept, held = told.remembered()
    assert 10 <= kept < 40 and held > 0
    told.update({})  # the experiment stopped
    assert answering.remembered()[0] == 0
