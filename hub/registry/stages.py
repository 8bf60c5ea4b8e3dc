"""The life of a model version: which stage may follow which.

::

    candidate ──► staging ──► production ──► archived
        │            │  ▲                      │
        └────────────┴──┼──────► archived      │
                        └──────────────────────┘  (re-qualify an old version)

Promoting a version to production archives the model's previous production
version in the same transaction, so a model has at most one in production.
"""

from __future__ import annotations

from typing import get_args

from appliance.errors import IllegalStageTransitionError, InvalidInputError
from appliance.wire.registry import Stage

STAGES: tuple[str, ...] = get_args(Stage)

ALLOWED: dict[str, frozenset[str]] = {
    "candidate": frozenset({"staging", "archived"}),
    "staging": frozenset({"production", "candidate", "archived"}),
    "production": frozenset({"archived"}),
    "archived": frozenset({"staging"}),
}


def check_transition(name: str, version: int, current: str, target: str) -> None:
    if target not in STAGES:
        raise InvalidInputError(f"stage: unknown stage {target!r}; one of {', '.join(STAGES)}")
    allowed = ALLOWED[current]
    hint = f"from {current} it may move to {', '.join(sorted(allowed))}"
    if target == current:
        raise IllegalStageTransitionError(
            f"{name} version {version} is already in {current}", hint=hint
        )
    if target not in allowed:
        raise IllegalStageTransitionError(
            f"{name} version {version} cannot move from {current} to {target}", hint=hint
        )
