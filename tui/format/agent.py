"""Pure formatting of one agent's details: who it is, what it serves, its drift and latency.

Fits the details dialog at 80x24: a line per fact, a line per model for its latest
drift windows and serving reports (no clock, no network).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from appliance.wire.fleet import AgentInfo, InstalledModel
from tui.format import common as fmt
from tui.records import DriftReport, ServingReport

R = TypeVar("R")
K = TypeVar("K", bound=Hashable)
READING = "reading the hub's latest reports…"


def agent_details(
    agent: AgentInfo,
    drift: Sequence[DriftReport] | None = None,
    serving: Sequence[ServingReport] | None = None,
    *,
    pending: str = READING,
) -> str:
    """The facts, then drift and serving (None: ``pending`` says why they are not here)."""
    labels = ", ".join(f"{k}={v}" for k, v in sorted(agent.labels.items())) or "-"
    health = fmt.agent_health(agent) + (f": {agent.detail}" if agent.detail else "")
    if agent.revoked_at:
        health += f" at {fmt.moment(agent.revoked_at)}"
    rows = [
        ("agent", f"{agent.name} (id {agent.id}) · {agent.zone} / {agent.group} · {agent.runtime}"),
        ("release", agent.software_version or "not said"),
        ("health", health),
        ("serving", fmt.installed(m for m in agent.models if m.state != "standby")),
        ("standby", standby(agent.models)),
        ("heartbeat", f"{fmt.moment(agent.last_seen_at)} · enrolled {_enrolled(agent)}"),
        ("url", f"{agent.url or '-'} · {labels}"),
    ]
    lines = [f"{key:>9}  {value}" for key, value in rows]
    if drift is None or serving is None:
        return "\n".join([*lines, "", pending])
    return "\n".join([*lines, *drift_lines(drift), *serving_lines(serving)])


def standby(models: Sequence[InstalledModel]) -> str:
    """Versions loaded beside the one answering (an A/B variant, blue-green's other side)."""
    return ", ".join(f"{m.name}@{m.version}" for m in models if m.state == "standby") or "-"


def _enrolled(agent: AgentInfo) -> str:
    return fmt.moment(agent.enrolled_at or agent.registered_at)


def drift_lines(reports: Sequence[DriftReport]) -> list[str]:
    """Per model: its latest window's min p-value and verdict, and how many drifted."""
    if not reports:
        return ["    drift  no drift windows reported"]
    lines = [f"    drift  the last {len(reports)} windows (min p-value, verdict):"]
    for model, windows in _by(reports, lambda r: r.model):
        last = windows[-1]
        drifted = sum(1 for w in windows if w.drifted)
        lines.append(
            f"    {model} v{last.version}  {fmt.moment(last.ended_at)[:16]}  "
            f"p={last.min_p_value:.2g} {'DRIFTED' if last.drifted else 'ok'}  "
            f"({drifted} of {len(windows)} drifted)"
        )
    return lines


def serving_lines(reports: Sequence[ServingReport]) -> list[str]:
    """Per model version: requests, errors and p95 latency summed over the reports."""
    if not reports:
        return ["  serving  no serving reports"]
    since = fmt.moment(reports[0].received_at)[:16]
    lines = [f"  latency  the last {len(reports)} serving reports, since {since}:"]
    for (model, version), held in _by(reports, lambda r: (r.model, r.version)):
        requests = sum(r.count("requests") for r in held)
        errors = sum(r.count("errors") for r in held)
        rejected = sum(r.count("rejected") for r in held)
        p95 = [r.p95_s for r in held if r.p95_s is not None]
        latency = f"p95 {_ms(p95[-1])} (worst {_ms(max(p95))})" if p95 else "p95 -"
        share = f" ({errors / requests:.1%})" if requests else ""
        refused = f" · {rejected:,} rejected" if rejected else ""
        lines.append(
            f"    {model} v{version}  {requests:,} req · {errors:,} err{share}{refused} · {latency}"
        )
    return lines


def _by(records: Sequence[R], key: Callable[[R], K]) -> list[tuple[K, list[R]]]:
    """Records grouped by ``key``, groups in order of first appearance, oldest first inside."""
    order: dict[K, list[R]] = {}
    for record in records:
        order.setdefault(key(record), []).append(record)
    return list(order.items())


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3g} ms"
