"""Pure formatting of rollouts and A/B experiments (no clock, no network)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.text import Text

from tui.format import common as fmt
from tui.records import Experiment, Rollout, Variant

ROLLOUT_STYLE = {
    "running": "bold yellow",
    "paused": "cyan",
    "completed": "green",
    "aborted": "bold red",
    "rolled_back": "bold red",
}
VERDICT_STYLE = {
    "winner": "bold green",
    "no_difference": "",
    "collecting": "cyan",
    "sample_ratio_mismatch": "bold red",
}
ROLLOUT_COLUMNS = ("id", "model", "ver", "state", "ring", "rings", "agents", "last step")
EXPERIMENT_COLUMNS = ("name", "model", "status", "verdict", "variants", "zone/group")
Z_95 = 1.959963984540054


def share(value: float) -> str:
    return f"{value * 100:g}%"


def rings_text(rollout: Rollout) -> str:
    """``5% > 25% > 100%``; named first agents lead; blue-green says so."""
    if rollout.strategy == "blue-green":
        return "blue-green"
    rings = " > ".join(share(r) for r in rollout.rings)
    if rollout.first_agents:
        return f"{', '.join(rollout.first_agents)} > {rings}"
    return rings


def last_step(rollout: Rollout) -> str:
    if not rollout.steps:
        return "-"
    step = rollout.steps[-1]
    note = f": {step['note']}" if step.get("note") else ""
    return f"{fmt.moment(step.get('at'))} {step.get('action', '?')} by {step.get('by', '?')}{note}"


def version_change(rollout: Rollout) -> str:
    before = f"v{rollout.previous}" if rollout.previous is not None else "none"
    return f"{before}->v{rollout.version}"


def rollout_cells(rollout: Rollout) -> list[str | Text]:
    return [
        str(rollout.id),
        Text(rollout.model),
        version_change(rollout),
        Text(rollout.state, style=ROLLOUT_STYLE.get(rollout.state, "")),
        f"{rollout.ring}/{rollout.rings_total}",
        Text(rings_text(rollout)),
        str(len(rollout.agents_reached)),
        Text(last_step(rollout)),
    ]


def rollout_steps(rollout: Rollout, last: int = 10) -> str:
    """The rollout's header line and its latest steps, oldest first."""
    head = (
        f"rollout {rollout.id}: {rollout.model} {version_change(rollout)} in "
        f"{rollout.zone}/{rollout.group} · {rollout.state} · ring {rollout.ring} of "
        f"{rollout.rings_total} ({rings_text(rollout)}) · {len(rollout.agents_reached)} agents "
        f"on v{rollout.version} · started by {rollout.created_by or '?'}"
    )
    steps = [
        f"  {fmt.moment(s.get('at'))}  ring {s.get('ring', '?')}  {s.get('action', '?'):<9} "
        f"{s.get('by', '?')}: {s.get('note', '')}"
        for s in rollout.steps[-last:]
    ]
    return "\n".join([head, *steps])


def rollout_started(rollout: Rollout) -> str:
    return (
        f"rollout {rollout.id} started: {rollout.model} {version_change(rollout)} in "
        f"{rollout.zone}/{rollout.group} ({rings_text(rollout)})"
    )


def promote_text(rollout: Rollout) -> str:
    """What ending the current ring's soak now does (the hub skips its gates too)."""
    skipped = (
        f"{rollout.model} v{rollout.version} leaves ring {rollout.ring} of "
        f"{rollout.rings_total} now, without the rest of its soak or its health gates. "
    )
    if rollout.ring < rollout.rings_total:
        return skipped + f"Ring {rollout.ring + 1}'s agents switch to v{rollout.version} now."
    return skipped + (
        f"It was the last ring: v{rollout.version} is approved for production as "
        f"{rollout.created_by or 'the approver who started it'} (production once enough "
        "approvers agree)."
    )


def winner_of(experiment: Experiment) -> Variant | None:
    return next((v for v in experiment.variants if v.name == experiment.winner), None)


def verdict_text(experiment: Experiment) -> str:
    if experiment.verdict == "winner" and experiment.winner:
        return f"winner: {experiment.winner}"
    return experiment.verdict.replace("_", " ")


def variants_text(experiment: Experiment) -> str:
    total = sum(v.weight for v in experiment.variants) or 1.0
    return " · ".join(
        f"{v.name} v{v.version} {share(v.weight / total)}" for v in experiment.variants
    )


def experiment_cells(experiment: Experiment) -> list[str | Text]:
    return [
        Text(experiment.name),
        Text(experiment.model),
        Text(experiment.status, style="" if experiment.status == "running" else "dim"),
        Text(verdict_text(experiment), style=VERDICT_STYLE.get(experiment.verdict, "")),
        Text(variants_text(experiment)),
        Text(f"{experiment.zone}/{experiment.group}"),
    ]


@dataclass(frozen=True)
class Bar:
    """One variant in the plot: its label, mean, and 95% interval (None for a mean metric)."""

    label: str
    mean: float
    low: float | None
    high: float | None


def wilson(successes: float, count: int) -> tuple[float, float]:
    """The Wilson score 95% interval of a rate (sound at small counts and near 0 or 1)."""
    if count <= 0:
        return 0.0, 1.0
    p = successes / count
    z2 = Z_95 * Z_95
    centre = (p + z2 / (2 * count)) / (1 + z2 / count)
    margin = Z_95 * math.sqrt(p * (1 - p) / count + z2 / (4 * count * count)) / (1 + z2 / count)
    return max(0.0, centre - margin), min(1.0, centre + margin)


def variant_bar(variant: Variant, metric: str) -> Bar:
    label = f"{variant.name} v{variant.version} n={variant.count:,}"
    if metric != "rate":
        return Bar(label, variant.mean, None, None)
    low, high = wilson(variant.mean * variant.count, variant.count)
    return Bar(label, variant.mean, low, high)


def experiment_details(experiment: Experiment) -> str:
    """The hub's verdict and each comparison with the control, under the plot."""
    unit = "rate" if experiment.metric == "rate" else "mean"
    lines = [
        f"{experiment.name}: {verdict_text(experiment)} ({experiment.status}; "
        f"{unit}, at least {experiment.min_samples:,} each). {experiment.detail}"
    ]
    for c in experiment.comparisons:
        mark = "significant" if c.significant else "not significant"
        lines.append(
            f"  {c.variant} - {c.control}: {c.difference:+.4f} "
            f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}] p={c.p_value:.3g}, {mark}"
        )
    return "\n".join(lines)
