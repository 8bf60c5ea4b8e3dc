"""Pure formatting of drift alerts and drift test history (no clock, no network)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from rich.text import Text

from tui.format import common as fmt
from tui.records import DriftAlert, DriftReport

ALERT_COLUMNS = ("alert", "state", "agent", "model", "ver", "windows", "opened (UTC)", "closed")
ALPHA = 0.05
"""The agents' significance level (``AlibiDetector``'s ``p_value``), before correction."""
P_FLOOR = 1e-16
"""p-values under this (or 0) are drawn at it: the log axis has no room for zero."""
UNITS = (("days", 86400.0), ("hours", 3600.0), ("minutes", 60.0))
"""The plot's time unit: the largest of which the history spans more than three."""
KEEP = 240
"""Drift windows kept per series for the plot."""


def agent_label(agent_id: int, names: Mapping[int, str]) -> str:
    name = names.get(agent_id)
    return f"{name} (#{agent_id})" if name else f"#{agent_id}"


def alert_cells(alert: DriftAlert, names: Mapping[int, str]) -> list[str | Text]:
    style = "bold red" if alert.is_open else "dim"
    return [
        str(alert.id),
        Text("OPEN" if alert.is_open else "closed", style=style),
        Text(agent_label(alert.agent_id, names), style="bold" if alert.is_open else ""),
        Text(alert.model, style="bold" if alert.is_open else ""),
        str(alert.version),
        str(alert.windows),
        fmt.moment(alert.opened_at),
        fmt.moment(alert.closed_at) if alert.closed_at else "-",
    ]


def series_key(agent_id: int, model: str) -> str:
    return f"{agent_id}/{model}"


def features(reports: Sequence[DriftReport]) -> int:
    """How many features the latest window tested (the Bonferroni divisor)."""
    return max(len(reports[-1].p_values), 1) if reports else 1


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class PSeries:
    """Min p-value per window against time before the last window, in ``unit``."""

    unit: str
    when: list[float]
    p: list[float]
    drifted_when: list[float]
    drifted_p: list[float]
    threshold: float


def p_series(reports: Sequence[DriftReport]) -> PSeries | None:
    if not reports:
        return None
    ends = [_epoch(r.ended_at) for r in reports]
    span = ends[-1] - ends[0]
    unit, scale = next((u, s) for u, s in UNITS if span > 3 * s or s == 60.0)
    when = [round((t - ends[-1]) / scale, 3) for t in ends]
    p = [max(r.min_p_value, P_FLOOR) for r in reports]
    drifted = [(w, q) for w, q, r in zip(when, p, reports, strict=True) if r.drifted]
    return PSeries(
        unit=unit,
        when=when,
        p=p,
        drifted_when=[w for w, _ in drifted],
        drifted_p=[q for _, q in drifted],
        threshold=ALPHA / features(reports),
    )


def drift_summary(alert: DriftAlert, reports: Sequence[DriftReport], agent: str) -> str:
    """The line over the plot: which series, how many windows, how many drifted, the line."""
    if not reports:
        return f"{alert.model} on {agent}"
    drifted = sum(1 for r in reports if r.drifted)
    versions = ", ".join(f"v{v}" for v in sorted({r.version for r in reports}))
    tested = features(reports)
    return (
        f"{alert.model} on {agent}: {len(reports)} windows of {versions} ({reports[-1].method}), "
        f"{drifted} drifted; significance {ALPHA / tested:.3g} ({ALPHA:g}/{tested} features)"
    )
