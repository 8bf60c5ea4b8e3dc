"""What ``/agent/status`` says, and what a process of a ``--workers N`` agent shares.

The owner knows how syncing goes (the hub's reachability, errors, problems, drift); a
serving process shows the owner's last word on those (:mod:`agent.peers`, at most a
second old) beside its own models, outbox and remembered experiment requests.
"""

from __future__ import annotations

import os
from typing import Any

from agent.core import AgentCore
from agent.peers import Peers, Share


def owner_fields(core: AgentCore) -> dict[str, Any]:
    """The status fields that syncing and drift testing decide (the owner's)."""
    sync = core.sync.status if core.sync else None
    return {
        "zone": core.sync.identity.zone if core.sync else core.settings.zone,
        "group": core.sync.identity.group if core.sync else None,
        "hub_reachable": sync.hub_reachable if sync else False,
        "last_error": sync.last_error if sync else None,
        "update_error": sync.update_error if sync else None,
        "problems": dict(sync.problems) if sync else {},
        "drift": core.drift.status(),
    }


def agent_status(core: AgentCore) -> dict[str, object]:
    fields = owner_fields(core)
    owner = core.peers.owner() if core.follower and core.peers else None
    if owner is not None:
        fields.update(owner.status)
    return {
        "name": core.settings.agent_name,
        "process": {"role": core.role, "pid": os.getpid()},
        "hub_url": core.settings.hub_url,
        **fields,
        "outbox": {
            "depth": core.outbox.depth(),
            "dropped": core.outbox.dropped(),
            "refused": core.outbox.dead_letter_count(),
            "refused_latest": core.outbox.dead_letters(limit=5),
        },
        "experiments": dict(
            zip(("remembered_ids", "remembered_bytes"), core.router.remembered(), strict=True)
        ),
        "models": [
            {
                "name": m.name,
                "version": m.version,
                "runtime": m.runtime.kind,
                "loaded_at": m.loaded_at,
                "on_probation": m.probation is not None and m.probation.verdict() is None,
            }
            for m in core.repository.all()
        ],
    }


def share_of(core: AgentCore) -> Share:
    """This process's counts, and the owner's state, for the other processes."""
    share = Share(
        pid=os.getpid(),
        role=core.role,
        samples=sorted(core.metrics.own_samples().items()),
        last=core.metrics.own_last(),
    )
    if core.role == "owner":
        share.status = owner_fields(core)
        share.hub_reachable = bool(core.sync and core.sync.status.hub_reachable)
        share.drift = [
            (name, version, result.drifted, list(result.p_values))
            for (name, version), result in sorted(core.drift.latest().items())
        ]
    return share


def owner_reachable(peers: Peers) -> bool:
    """Whether the owner's last sync reached the hub (for a serving process's gauge)."""
    owner = peers.owner()
    return bool(owner and owner.hub_reachable)


def owner_drifts(peers: Peers) -> dict[tuple[str, int], tuple[bool, list[float]]]:
    owner = peers.owner()
    return {(m, v): (found, p) for m, v, found, p in owner.drift} if owner else {}
