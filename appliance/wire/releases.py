"""Wire schemas of rollouts, A/B experiments and drift, shared by the hub and the console.

The hub answers with these; the console reads the same structs (through
:mod:`tui.records`), so one definition serves both sides of the wire. Fields
the hub always fills but the console does not need have defaults, so the
console also reads a hub one release older or newer.
"""

from __future__ import annotations

from typing import Any

import msgspec


class RolloutInfo(msgspec.Struct, kw_only=True):
    id: int
    model: str
    version: int
    previous: int | None = None
    zone: str
    group: str
    strategy: str = "canary"
    rings: list[float]
    first_agents: list[str] = []
    ring: int
    """1-based: the ring the rollout is in now."""
    ring_count: int | None = None
    state: str
    soak_s: float = 0.0
    ring_started_at: str = ""
    agents_reached: list[int] = []
    """Agents whose requests the new version answers now."""
    agents_standby: list[int] = []
    """Blue-green: agents holding the other version loaded beside the one answering."""
    steps: list[dict[str, Any]] = []
    created_by: str = ""

    @property
    def rings_total(self) -> int:
        return self.ring_count if self.ring_count is not None else len(self.rings)


class VariantResult(msgspec.Struct, kw_only=True):
    name: str
    version: int
    weight: float
    count: int
    mean: float


class Comparison(msgspec.Struct, frozen=True):
    """One variant against the control."""

    control: str
    variant: str
    difference: float
    """Variant minus control."""
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool


class ExperimentInfo(msgspec.Struct, kw_only=True):
    id: int = 0
    name: str
    model: str
    zone: str
    group: str
    metric: str
    """``rate`` (a share of successes) or ``mean``."""
    outcome_min: float | None = None
    outcome_max: float | None = None
    """The outcomes a ``mean`` experiment takes (a ``rate``: 0 or 1)."""
    min_samples: int
    status: str
    salt: str = ""
    created_by: str = ""
    created_at: str = ""
    variants: list[VariantResult]
    verdict: str
    winner: str | None = None
    detail: str = ""
    srm_p_value: float = 1.0
    comparisons: list[Comparison] = []


class DriftReportInfo(msgspec.Struct, kw_only=True):
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
    distances: list[float] = []


class ServingReportInfo(msgspec.Struct, kw_only=True):
    """One agent's requests, errors and latency for one model version over an interval."""

    id: int
    agent_id: int
    received_at: str
    summary: dict[str, Any]
    """Requests, errors, rejected, mean and p95 latency of one model version over an interval."""

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


class DriftAlertInfo(msgspec.Struct, kw_only=True):
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
