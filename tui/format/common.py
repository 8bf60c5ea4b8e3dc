"""Pure formatting of hub records for the console's tables and panels.

Nothing here reads a clock or the network, so what a screen shows for a given
answer from the hub is fixed (and the snapshot tests stay deterministic).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from rich.text import Text

from appliance.wire.fleet import AgentInfo, InstalledModel
from appliance.wire.registry import VersionInfo

HEALTH_STYLE = {"ok": "green", "degraded": "yellow", "failing": "bold red", "revoked": "dim"}
STAGE_STYLE = {
    "production": "bold green",
    "staging": "yellow",
    "candidate": "cyan",
    "archived": "dim",
}


def moment(value: str | None) -> str:
    """``2025-01-02T03:04:05.678Z`` -> ``2025-01-02 03:04:05`` (UTC); ``-`` for none."""
    if not value:
        return "-"
    return value[:19].replace("T", " ")


def installed(models: Iterable[InstalledModel]) -> str:
    """``tiny@3, churn@1 (loading)``: what an agent runs."""
    parts = [
        f"{m.name}@{m.version}" + ("" if m.state == "ready" else f" ({m.state})") for m in models
    ]
    return ", ".join(parts) or "-"


def agent_health(agent: AgentInfo) -> str:
    return "revoked" if agent.revoked_at else agent.health


def styled(value: str, styles: dict[str, str]) -> Text:
    """Plain text (never markup: names come from the hub) in the style for its value."""
    return Text(value, style=styles.get(value, ""))


def agent_matches(agent: AgentInfo, needle: str) -> bool:
    """Case-insensitive match of the filter text against every column an operator sees."""
    if not needle:
        return True
    haystack = " ".join(
        [
            str(agent.id),
            agent.name,
            agent.zone,
            agent.group,
            agent.runtime,
            agent.software_version or "",
            installed(agent.models),
            agent_health(agent),
            *(f"{k}={v}" for k, v in agent.labels.items()),
        ]
    ).lower()
    return all(word in haystack for word in needle.lower().split())


AGENT_SORTS: dict[str, Any] = {
    "name": lambda a: a.name.lower(),
    "zone": lambda a: (a.zone, a.group, a.name.lower()),
    "health": lambda a: (
        ["failing", "degraded", "ok", "revoked"].index(agent_health(a))
        if agent_health(a) in ("failing", "degraded", "ok", "revoked")
        else 0,
        a.name.lower(),
    ),
    "last seen": lambda a: a.last_seen_at or "",
}
"""Sort keys the fleet screen cycles through (health puts trouble first)."""


def usual_zone(agents: Iterable[AgentInfo]) -> str | None:
    """The zone most of the unrevoked agents are in (None without any)."""
    zones = Counter(a.zone for a in agents if not a.revoked_at)
    return zones.most_common(1)[0][0] if zones else None


def groups_text(agents: Iterable[AgentInfo], zone: str) -> str:
    """``cashiers 2, lobby 1``: the zone's groups and their unrevoked agents."""
    groups = Counter(a.group for a in agents if a.zone == zone and not a.revoked_at)
    return ", ".join(f"{group} {count}" for group, count in sorted(groups.items())) or "none"


def metrics_text(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())) or "-"


def version_details(info: VersionInfo) -> str:
    lineage = ", ".join(f"{k}={v}" for k, v in sorted(info.lineage.items())) or "-"
    rows = [
        (
            "version",
            f"{info.name} v{info.version}: {info.stage} since {moment(info.stage_changed_at)}",
        ),
        ("metrics", metrics_text(info.metrics)),
        ("lineage", lineage),
        ("approvals", ", ".join(info.approvals) or "-"),
        ("author", f"{info.created_by}, {moment(info.created_at)}"),
        ("bundle", f"{info.bundle_sha256[:16]} ({info.bundle_length} bytes)"),
        ("runtimes / zones", f"{', '.join(info.runtimes) or '-'} / {', '.join(info.zones) or '-'}"),
    ]
    return "\n".join(f"{key:>16}  {value}" for key, value in rows)


def stage_outcome(asked: str, info: VersionInfo) -> str:
    """What to tell the operator after a stage change (the hub answers 202 when short)."""
    if info.stage == asked:
        return f"{info.name} v{info.version} is now in {info.stage}"
    got = len(info.approvals)
    of = f" of {info.approvals_required}"
    return (
        f"approval recorded, {got}{of}: {info.name} v{info.version} stays in {info.stage} "
        "until another approver agrees"
    )


def audit_detail(entry: dict[str, Any]) -> str:
    detail = entry.get("detail") or {}
    return ", ".join(f"{k}={v}" for k, v in sorted(detail.items()))


def verify_summary(report: dict[str, Any]) -> tuple[bool, str]:
    """(ok, one line) from the hub's verification report, naming the first bad entry."""
    if report.get("ok"):
        return True, (
            f"OK: {report.get('entries_checked', 0)} entries, "
            f"{report.get('checkpoints_checked', 0)} checkpoints verified"
        )
    reason = report.get("reason") or "unknown reason"
    bad = report.get("first_bad_seq")
    if bad is not None:
        return False, f"TAMPERED: first bad entry seq={bad}: {reason}"
    return False, f"TAMPERED: {reason}"
