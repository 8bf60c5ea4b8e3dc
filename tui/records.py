"""Typed views of the hub answers that the client hands back as plain dicts.

Rollouts, experiments and drift come from :class:`appliance.hub_client.HubClient` as
``dict``; the console reads them through these structs: only the fields it shows,
unknown fields ignored, and defaults for fields that older or newer hubs may lack
(a blue-green rollout's standby agents, its ring count). An answer of the wrong
shape becomes a :class:`HubError` (said once in a notification), never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import msgspec

from appliance.errors import HubError

T = TypeVar("T")


class Rollout(msgspec.Struct, kw_only=True):
    id: int
    model: str
    version: int
    previous: int | None = None
    zone: str
    group: str
    rings: list[float]
    ring: int
    """1-based: the ring the rollout is in now."""
    state: str
    agents_reached: list[int] = []
    steps: list[dict[str, Any]] = []
    created_by: str = ""
    strategy: str = "canary"
    first_agents: list[str] = []
    ring_count: int | None = None

    @property
    def rings_total(self) -> int:
        return self.ring_count if self.ring_count is not None else len(self.rings)


class Variant(msgspec.Struct, kw_only=True):
    name: str
    version: int
    weight: float
    count: int
    mean: float


class Comparison(msgspec.Struct, kw_only=True):
    control: str
    variant: str
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool


class Experiment(msgspec.Struct, kw_only=True):
    name: str
    model: str
    zone: str
    group: str
    metric: str
    """``rate`` (a share of successes) or ``mean``."""
    min_samples: int
    status: str
    created_by: str = ""
    variants: list[Variant]
    verdict: str
    winner: str | None = None
    detail: str = ""
    comparisons: list[Comparison] = []


class DriftAlert(msgspec.Struct, kw_only=True):
    id: int
    agent_id: int
    model: str
    version: int
    windows: int
    opened_at: str
    closed_at: str | None = None

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class DriftReport(msgspec.Struct, kw_only=True):
    id: int
    agent_id: int
    model: str
    version: int
    drifted: bool
    min_p_value: float
    method: str
    window_size: int
    started_at: str
    ended_at: str
    p_values: list[float]


class ServingReport(msgspec.Struct, kw_only=True):
    """One agent's requests, errors and latency for one model version over an interval."""

    id: int
    agent_id: int
    received_at: str
    summary: dict[str, Any]

    @property
    def model(self) -> str:
        return str(self.summary.get("model", "?"))

    @property
    def version(self) -> int:
        return int(self.summary.get("version") or 0)

    def count(self, field: str) -> int:
        return int(self.summary.get(field) or 0)

    @property
    def p95_s(self) -> float | None:
        p95 = self.summary.get("latency_p95_s")
        return float(p95) if isinstance(p95, int | float) else None


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
