from __future__ import annotations

import pytest

from appliance.errors import ConflictError, IllegalStageTransitionError, InvalidInputError
from hub.registry.stages import STAGES, check_transition

ALLOWED = [
    ("candidate", "staging"),
    ("candidate", "archived"),
    ("staging", "production"),
    ("staging", "candidate"),
    ("staging", "archived"),
    ("production", "archived"),
    ("archived", "staging"),
]
EXPECTED_NEXT = {
    "candidate": "archived, staging",
    "staging": "archived, candidate, production",
    "production": "archived",
    "archived": "staging",
}


def test_stages_are_the_four_documented_ones():
    assert set(STAGES) == {"candidate", "staging", "production", "archived"}


@pytest.mark.parametrize(("current", "target"), ALLOWED)
def test_allowed_transitions_pass(current, target):
    check_transition("m", 1, current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (c, t)
        for c in ("candidate", "staging", "production", "archived")
        for t in ("candidate", "staging", "production", "archived")
        if c != t and (c, t) not in ALLOWED
    ],
)
def test_illegal_transitions_raise_with_hint_listing_allowed(current, target):
    with pytest.raises(IllegalStageTransitionError) as info:
        check_transition("fraud", 7, current, target)
    error = info.value
    assert isinstance(error, ConflictError)  # the HTTP layer answers 409
    assert "fraud" in error.message and "7" in error.message
    assert error.hint == f"from {current} it may move to {EXPECTED_NEXT[current]}"


def test_candidate_to_production_is_illegal():
    with pytest.raises(IllegalStageTransitionError, match="candidate to production"):
        check_transition("m", 1, "candidate", "production")


def test_production_to_candidate_is_illegal():
    with pytest.raises(IllegalStageTransitionError, match="production to candidate"):
        check_transition("m", 1, "production", "candidate")


@pytest.mark.parametrize("stage", ["candidate", "staging", "production", "archived"])
def test_same_stage_is_illegal(stage):
    with pytest.raises(IllegalStageTransitionError, match=f"already in {stage}"):
        check_transition("m", 1, stage, stage)


def test_same_stage_error_hints_at_allowed_stages():
    with pytest.raises(IllegalStageTransitionError) as info:
        check_transition("m", 1, "staging", "staging")
    assert info.value.hint is not None
    assert "production" in info.value.hint


@pytest.mark.parametrize("target", ["prod", "Production", "", "deleted"])
def test_unknown_stage_is_invalid_input(target):
    with pytest.raises(InvalidInputError) as info:
        check_transition("m", 1, "candidate", target)
    assert not isinstance(info.value, IllegalStageTransitionError)
    assert "unknown stage" in info.value.message
