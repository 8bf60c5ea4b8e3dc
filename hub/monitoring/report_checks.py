"""What makes an agent's report acceptable, kind by kind, one report at a time.

A batch used to be refused whole (400) for one bad report, and the agent sent the same
batch again for ever: nothing it reported later reached the hub. Now each report is
judged on its own (:func:`checked`); the hub holds the good ones and names the bad
ones with a reason, which the agent sets aside.

Numbers must be finite: JSON has no NaN, so a NaN the agent measured arrives as
``null`` and is refused here as much as a value too large to add up (``1e308`` squared
is infinite, and one such outcome would blank a variant's whole summary).
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from appliance.wire.fleet import AbSummary, AgentReport


class DriftBody(msgspec.Struct, kw_only=True):
    model: str
    version: int
    method: str
    drifted: bool
    p_values: list[float]
    distances: list[float]
    threshold: float
    window_size: int
    started_at: float
    ended_at: float


class ServingBody(msgspec.Struct, kw_only=True):
    model: str
    version: int
    requests: int
    errors: int = 0
    rejected: int = 0
    latency_mean_s: float | None = None
    latency_p95_s: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    variant: str = ""


_BODIES: dict[str, type[msgspec.Struct]] = {
    "drift": DriftBody,
    "serving": ServingBody,
    "ab": AbSummary,
}


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list | tuple):
        return any(_non_finite(v) for v in value)
    return False


def checked(report: AgentReport) -> msgspec.Struct | str:
    """The report's body, typed, when the hub accepts it; otherwise why it refuses it."""
    try:
        body = msgspec.convert(report.body, _BODIES[report.kind])
    except msgspec.ValidationError as exc:
        return f"body: {exc}"
    bad = [
        name
        for name in body.__struct_fields__
        if _non_finite(getattr(body, name))
        or (isinstance(getattr(body, name), int) and getattr(body, name) < 0)
    ]
    if isinstance(body, AbSummary) and not math.isfinite(body.total * body.total):
        bad.append("total")  # finite, but its square (the summary's variance) is not
    if isinstance(body, DriftBody) and not body.p_values:
        bad.append("p_values")
    if isinstance(body, ServingBody) and body.errors + body.rejected > body.requests:
        bad.append("errors")
    if bad:
        return f"body: {', '.join(sorted(set(bad)))} must be finite, non-negative numbers"
    return body
