"""What the console says about hub answers it cannot easily provoke from a real hub."""

from __future__ import annotations

import msgspec

from tests.tui.fixed_hub import MODELS
from tui import format as fmt


def test_verification_names_the_first_bad_entry() -> None:
    report = {"ok": False, "entries_checked": 6, "first_bad_seq": 7, "reason": "hash mismatch"}
    assert fmt.verify_summary(report) == (
        False,
        "TAMPERED: first bad entry seq=7: hash mismatch",
    )


def test_a_short_approval_says_how_many_so_far() -> None:
    staging = msgspec.structs.replace(MODELS["churn"][1], approvals_required=2)
    said = fmt.stage_outcome("production", staging)
    assert said.startswith("approval recorded, 1 of 2")
