"""The one rule for which model versions may answer live traffic.

A version answers real requests for an agent group in four ways: as the model's
production version, in a rollout's rings, loaded beside the default by a
blue-green rollout, or as a variant of an A/B experiment. Every one of them
passes through :class:`ServingPolicy`:

* **production**: only through :meth:`RegistryService.change_stage`, which needs
  the site's approvals (:func:`approvals_met` over the production approvals);
* **anything else** (rings, standby, variants): the version must be in staging
  and hold *exposure approvals* that meet the same rule: ``approvals_required``
  distinct approvers, the author never counting. An approver gives one with
  ``POST /api/v1/models/{name}/versions/{version}/exposure``, or by starting a
  rollout or an experiment that names the version.

Rollouts and experiments are refused when they are created
(:class:`~appliance.errors.ApprovalRequiredError`, 403, audited at the HTTP
boundary), and the update service asks :meth:`ServingPolicy.live` again when it
publishes, so a version that lost its approvals (moved back to candidate,
archived) leaves agents' signed metadata at the next publication even if a
rollout or an experiment still names it. Approvals of either kind are cleared
whenever the version changes stage, as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from appliance.errors import ApprovalRequiredError, NotFoundError
from hub.registry.records import ExposureApprovalRecord, ModelRecord, ModelVersionRecord


def counted(approvers: Iterable[str], author: str) -> int:
    """Distinct approvers other than the author (who never counts)."""
    return len({a for a in approvers if a != author})


def approvals_met(approvers: Iterable[str], author: str, required: int) -> bool:
    """``required`` distinct approvers other than the author."""
    return counted(approvers, author) >= max(required, 1)


@dataclass(frozen=True)
class Clearance:
    """Whether a version may take live traffic, and if not, why (for the refusal)."""

    allowed: bool
    reason: str = ""


def exposure_approvers(session: Session, record: ModelVersionRecord) -> list[str]:
    return [
        a.approver
        for a in session.exec(
            select(ExposureApprovalRecord)
            .where(ExposureApprovalRecord.version_id == record.id)
            .order_by(col(ExposureApprovalRecord.id))
        )
    ]


class ServingPolicy:
    def __init__(self, engine: Engine, approvals_required: int) -> None:
        self.engine = engine
        self.approvals_required = approvals_required

    def judge(self, session: Session, name: str, record: ModelVersionRecord) -> Clearance:
        if record.stage == "production":
            return Clearance(True)
        label = f"{name} v{record.version}"
        if record.stage != "staging":
            return Clearance(
                False, f"{label} is {record.stage}: only staging or production versions serve"
            )
        approvers = exposure_approvers(session, record)
        if approvals_met(approvers, record.created_by, self.approvals_required):
            return Clearance(True)
        have = counted(approvers, record.created_by)
        return Clearance(
            False,
            f"{label} has {have} of {self.approvals_required} exposure approvals from "
            f"approvers other than its author ({record.created_by})",
        )

    def require(self, name: str, version: int, use: str) -> None:
        """Raise :class:`ApprovalRequiredError` unless the version may serve as ``use``."""
        with Session(self.engine) as session:
            record = _version_record(session, name, version)
            clearance = self.judge(session, name, record)
        if not clearance.allowed:
            raise ApprovalRequiredError(
                f"{use} refused: {clearance.reason}",
                hint=f"an approver other than the author approves exposure: "
                f"POST /api/v1/models/{name}/versions/{version}/exposure",
            )

    def live(self, wanted: Iterable[tuple[str, int]]) -> set[tuple[str, int]]:
        """The (model, version) pairs of ``wanted`` that may take live traffic now."""
        allowed: set[tuple[str, int]] = set()
        with Session(self.engine) as session:
            for name, version in set(wanted):
                try:
                    record = _version_record(session, name, version)
                except NotFoundError:
                    continue
                if self.judge(session, name, record).allowed:
                    allowed.add((name, version))
        return allowed


def _version_record(session: Session, name: str, version: int) -> ModelVersionRecord:
    record = session.exec(
        select(ModelVersionRecord)
        .join(ModelRecord, col(ModelVersionRecord.model_id) == col(ModelRecord.id))
        .where(ModelRecord.name == name, ModelVersionRecord.version == version)
    ).first()
    if record is None:
        raise NotFoundError(f"model {name!r} has no version {version}")
    return record
