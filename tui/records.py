"""Typed views of the hub answers that the client hands back as plain dicts.

Rollouts, experiments and drift come from :class:`appliance.client.hub.HubClient` as
``dict``; the console reads them through the hub's own wire structs
(:mod:`appliance.wire.releases`, named here as the console calls them): unknown
fields ignored, defaults for fields an older or newer hub may lack. An answer of the
wrong shape becomes a :class:`HubError` (said once in a notification), never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import msgspec

from appliance.errors import HubError
from appliance.wire.releases import (
    DriftAlertInfo,
    DriftReportInfo,
    ExperimentInfo,
    RolloutInfo,
    ServingReportInfo,
    VariantResult,
)

T = TypeVar("T")


Rollout = RolloutInfo
Variant = VariantResult
Experiment = ExperimentInfo
DriftAlert = DriftAlertInfo
DriftReport = DriftReportInfo
ServingReport = ServingReportInfo


def convert(raw: Any, kind: type[T], what: str) -> T:
    """``raw`` (decoded JSON) as ``kind``; a :class:`HubError` naming ``what`` if it is not."""
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        raise HubError(f"the hub sent {what} the console cannot read: {exc}") from exc


def appended(
    held: Sequence[T], new: Iterable[T], position: Callable[[T], int], keep: int
) -> list[T]:
    """``held`` then what ``new`` has past its last (by ``position``); the last ``keep``."""
    last = position(held[-1]) if held else 0
    return [*held, *(r for r in new if position(r) > last)][-keep:]


def read_after(
    page: Callable[[int], Sequence[T]],
    after: int,
    position: Callable[[T], int],
    *,
    full: int,
    keep: int,
    max_pages: int,
) -> list[T]:
    """Follow a list the hub pages oldest first (``page(after)``) to its end, or ``max_pages``.

    A page shorter than ``full`` is the last; only the latest ``keep`` records are kept.
    """
    found: list[T] = []
    cursor = after
    for _ in range(max_pages):
        batch = page(cursor)
        found = appended(found, batch, position, keep)
        if len(batch) < full:
            break
        cursor = position(batch[-1])
    return found


def read_tail(
    page: Callable[[int], Sequence[T]], position: Callable[[T], int], *, full: int
) -> list[T]:
    """The last page (at most ``full`` records) of a list the hub pages oldest first.

    ``page(after)`` answers the first ``full`` records past position ``after``. Positions
    (ids) grow but need not be dense (another agent's reports sit between), so the smallest
    ``after`` whose page is full and whose next position's page is not is found by
    galloping, then halving: a long history costs a few dozen calls, not one per page.
    """
    low, held = 0, page(0)
    if len(held) < full:
        return list(held)
    step = max(position(held[-1]), 1)
    while True:  # gallop: ``low`` always has a full page; find a position past the tail
        high = low + step
        ahead = page(high)
        if len(ahead) < full:
            break
        low, held, step = high, ahead, step * 2
    while high - low > 1:  # halve: keep a full page at ``low``, a short one at ``high``
        middle = (low + high) // 2
        found = page(middle)
        if len(found) < full:
            high = middle
        else:
            low, held = middle, found
    return list(held)
