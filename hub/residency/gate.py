"""The one choke point every cross-zone flow passes: decide, audit, allow or refuse.

An allowed flow is audited in the caller's transaction, so the record and the
flow commit together. A refusal is audited in a transaction of its own (the
caller's is about to roll back) and then raised as a 403 that names the rule.
Call :meth:`ResidencyGate.check` before the flow writes anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session

from appliance.errors import ResidencyRefusedError
from hub.audit.service import AuditLog
from hub.db import session_scope
from hub.residency.policy import Decision, Flow, ResidencyPolicy

ACTION = "residency.decision"


@dataclass
class ResidencyGate:
    engine: Engine
    policy: ResidencyPolicy
    audit: AuditLog

    def check(
        self,
        session: Session,
        *,
        flow: Flow,
        actor: str,
        subject_zone: str,
        object_zones: Iterable[str],
        target: str,
        source: str | None = None,
    ) -> Decision:
        decision = self.policy.decide(flow, subject_zone, object_zones)
        detail = {
            "flow": flow,
            "rule": decision.rule,
            "reason": decision.reason,
            "to_zone": decision.subject_zone,
            "data_zones": list(decision.object_zones),
            "policy": self.policy.source,
        }
        if decision.allowed:
            self.audit.append(
                session,
                actor=actor,
                action=ACTION,
                target=target,
                outcome="allowed",
                source=source,
                detail=detail,
            )
            return decision
        with session_scope(self.engine) as own:
            self.audit.append(
                own,
                actor=actor,
                action=ACTION,
                target=target,
                outcome="refused",
                source=source,
                detail=detail,
            )
        raise ResidencyRefusedError(
            f"residency policy refuses {target}: {decision.reason}",
            rule=decision.rule,
            hint="change the residency policy if this flow is lawful",
        )
