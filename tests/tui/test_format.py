"""What the console says about hub answers it cannot easily provoke from a real hub."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from tests.tui.fixed_hub import MODELS
from tui.dialogs.export import destination
from tui.dialogs.form import percentages
from tui.format import common as fmt
from tui.records import read_tail


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


def test_read_tail_finds_the_last_page_in_few_calls() -> None:
    ids = [3 * k + 1 for k in range(2500)] + [10_000 + k for k in range(57)]  # sparse, then dense
    calls = []

    def page(after: int) -> list[int]:
        calls.append(after)
        return [i for i in ids if i > after][:100]

    assert read_tail(page, lambda i: i, full=100) == ids[-100:]
    assert len(calls) < 40  # not one call per page (26 pages)
    for held in ([], [5], list(range(1, 101)), list(range(1, 102))):
        found = read_tail(lambda a, h=held: [i for i in h if i > a][:100], lambda i: i, full=100)
        assert found == held[-100:]


@pytest.mark.parametrize(
    ("typed", "said"),
    [("5,25,100", [0.05, 0.25, 1.0]), ("100", [1.0]), (" 10%, 100% ", [0.1, 1.0])],
)
def test_rings_are_percentages(typed: str, said: list[float]) -> None:
    assert percentages(typed, "rings") == said


@pytest.mark.parametrize("typed", ["", "5,25", "25,5,100", "0,100", "5,x,100", "50,150"])
def test_rings_that_cannot_be(typed: str) -> None:
    with pytest.raises(ValueError, match="increasing percentages ending at 100"):
        percentages(typed, "rings")


def test_export_destination(tmp_path: Path) -> None:
    assert destination(str(tmp_path), "u.tar") == tmp_path / "u.tar"
    assert destination(str(tmp_path / "b.tar"), "u.tar") == tmp_path / "b.tar"
    (tmp_path / "b.tar").write_bytes(b"")
    with pytest.raises(ValueError, match="exists"):
        destination(str(tmp_path / "b.tar"), "u.tar")
    with pytest.raises(ValueError, match="No folder"):
        destination(str(tmp_path / "no" / "b.tar"), "u.tar")
