"""Defining A/B experiments and reading their verdict from what agents report.

Agents report per-variant summaries (count, sum, sum of squares of the
outcome) through their outbox as ``ab`` reports; the verdict is recomputed from
all of them on every read (:mod:`hub.experiments.stats`). Every variant takes
live traffic, so each must be production or a staging version cleared by the
one serving policy (:mod:`hub.registry.serving_policy`) when the experiment is
created, and again whenever the hub publishes.
"""

from __future__ import annotations

import math
import re
import secrets
from datetime import timedelta
from typing import Literal

import msgspec
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlmodel import Session, col, select

from appliance.clock import as_utc, iso_utc, utcnow
from appliance.errors import ConflictError, InvalidInputError, NotFoundError
from appliance.outcomes import OutcomeRule
from appliance.trust.layout import ExperimentSpec, VariantSpec
from appliance.wire.fleet import AbSummary
from appliance.wire.releases import ExperimentInfo, VariantResult
from hub.audit.service import AuditLog
from hub.auth.principal import Principal
from hub.db import session_scope
from hub.events import Changes
from hub.experiments.records import ExperimentRecord
from hub.experiments.stats import VariantSummary, decide
from hub.monitoring.records import AgentReportRecord
from hub.registry.service import RegistryService

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


class NewExperiment(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    model: str
    variants: list[VariantSpec]
    zone: str
    group: str = "default"
    metric: Literal["rate", "mean"] = "rate"
    outcome_min: float | None = None
    """A ``mean`` experiment's smallest and largest outcome (default ±1e9): agents refuse
    others with 422, the hub refuses summaries outside them (:mod:`appliance.outcomes`)."""
    outcome_max: float | None = None
    higher_is_better: bool = True
    min_samples: int = 1000
    alpha: float = 0.05


class ExperimentService:
    def __init__(
        self,
        engine: Engine,
        registry: RegistryService,
        audit: AuditLog,
        *,
        max_days: float = 90.0,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.audit = audit
        self.max_age = timedelta(days=max_days)
        """The longest an experiment runs (``APPLIANCE_MAX_EXPERIMENT_DAYS``): its variants
        leave agents' metadata then, and :meth:`expire` stops it."""
        self.changes = Changes()
        """Told after an experiment starts or stops: agents' metadata must follow."""

    def running_for(self, zone: str, group: str) -> dict[str, ExperimentSpec]:
        """The running experiments of one agent group, as its signed index carries them."""
        with Session(self.engine) as session:
            rows = session.exec(
                select(ExperimentRecord).where(
                    ExperimentRecord.zone == zone,
                    ExperimentRecord.group == group,
                    ExperimentRecord.status == "running",
                )
            ).all()
        return {r.name: _spec(r) for r in rows if not self._overdue(r)}

    def summary_refusal(self, summary: AbSummary) -> str | None:
        """Why the hub refuses an agent's ``ab`` summary: an unknown experiment or variant,
        or figures no outcomes the experiment takes add up to."""
        with Session(self.engine) as session:
            record = session.exec(
                select(ExperimentRecord).where(ExperimentRecord.name == summary.experiment)
            ).first()
        if record is None:
            return f"experiment: no experiment named {summary.experiment[:64]!r}"
        if summary.variant not in {v["name"] for v in record.variants}:
            return f"variant: {summary.variant[:64]!r} is not a variant of {record.name!r}"
        return _rule(record).summary_refusal(summary.count, summary.total, summary.total_sq)

    def create(self, spec: NewExperiment, by: Principal) -> ExperimentInfo:
        if not NAME.fullmatch(spec.name):
            raise InvalidInputError(f"name: {spec.name!r} is not a valid experiment name")
        if len(spec.variants) < 2 or len({v.name for v in spec.variants}) != len(spec.variants):
            raise InvalidInputError("variants: at least two, with distinct names")
        if any(not 0 < v.weight < math.inf for v in spec.variants):
            raise InvalidInputError("variants: every weight must be a positive finite number")
        if spec.min_samples < 1 or not 0 < spec.alpha < 0.5:
            raise InvalidInputError("min_samples must be >= 1 and alpha in (0, 0.5)")
        rule = OutcomeRule.checked(spec.metric, spec.outcome_min, spec.outcome_max)
        stages = {
            v.version: self.registry.get_version(spec.model, v.version).stage for v in spec.variants
        }  # 404 for an unknown version, before anything else
        for variant in spec.variants:
            # Variants take live traffic: each must be cleared by the one serving policy.
            if stages[variant.version] == "staging":
                self.registry.approve_exposure(spec.model, variant.version, by=by, strict=False)
            self.registry.serving.require(
                spec.model, variant.version, f"A/B variant {variant.name!r}"
            )
        running = [
            name
            for name, other in self.running_for(spec.zone, spec.group).items()
            if other.model == spec.model
        ]
        if running:
            raise ConflictError(
                f"experiment {running[0]!r} already splits {spec.model} traffic in "
                f"{spec.zone}/{spec.group}",
                hint=f"stop {running[0]!r} first: one experiment per model and group",
            )
        record = ExperimentRecord(
            name=spec.name,
            model=spec.model,
            variants=[msgspec.to_builtins(v) for v in spec.variants],
            zone=spec.zone,
            group=spec.group,
            metric=spec.metric,
            outcome_min=rule.low if spec.metric == "mean" else None,
            outcome_max=rule.high if spec.metric == "mean" else None,
            higher_is_better=spec.higher_is_better,
            min_samples=spec.min_samples,
            alpha=spec.alpha,
            salt=secrets.token_hex(16),
            created_by=by.actor,
        )
        try:
            with session_scope(self.engine) as session:
                session.add(record)
                session.flush()
                self.audit.append(
                    session,
                    actor=by.actor,
                    action="experiment.create",
                    target=f"experiment:{spec.name}",
                    outcome="ok",
                    detail={"model": spec.model, "variants": record.variants},
                )
        except SAIntegrityError as exc:
            raise ConflictError(f"an experiment named {spec.name!r} exists") from exc
        self.changes.announce(by.actor, f"experiment {spec.name} started")
        return self.get(spec.name)

    def _overdue(self, record: ExperimentRecord) -> bool:
        return utcnow() - as_utc(record.created_at) > self.max_age

    def expire(self) -> list[str]:
        """The scheduler's job: stop running experiments past their longest run."""
        stopped = []
        with session_scope(self.engine) as session:
            for record in session.exec(
                select(ExperimentRecord).where(ExperimentRecord.status == "running")
            ):
                if not self._overdue(record):
                    continue
                record.status = "stopped"
                session.add(record)
                self.audit.append(
                    session,
                    actor="system",
                    action="experiment.stop",
                    target=f"experiment:{record.name}",
                    outcome="ok",
                    detail={"reason": f"ran longer than {self.max_age.days} days"},
                )
                stopped.append(record.name)
        for name in stopped:
            self.changes.announce("system", f"experiment {name} ran its longest and stopped")
        return stopped

    def stop(self, name: str, by: Principal) -> ExperimentInfo:
        with session_scope(self.engine) as session:
            record = self._record(session, name)
            record.status = "stopped"
            session.add(record)
            self.audit.append(
                session,
                actor=by.actor,
                action="experiment.stop",
                target=f"experiment:{name}",
                outcome="ok",
            )
        self.changes.announce(by.actor, f"experiment {name} stopped")
        return self.get(name)

    def promote_winner(self, name: str, by: Principal) -> ExperimentInfo:
        """End the experiment and take its winner to production the usual way.

        The winner must have been declared (minimum samples reached, significant) and be
        a staging version; the caller's ``change_stage`` is an approval like any other,
        so with two approvals required the version waits for the second one.
        """
        info = self.get(name)
        if info.winner is None:
            raise ConflictError(
                f"experiment {name!r} has no winner ({info.verdict}: {info.detail})",
                hint="wait for more outcomes, or stop it without promoting",
            )
        winner = next(v for v in info.variants if v.name == info.winner)
        stage = self.registry.get_version(info.model, winner.version).stage
        if stage == "production":
            raise ConflictError(
                f"the winner, {info.model} v{winner.version}, is in production already",
                hint="stop the experiment: production stays as it is",
            )
        if stage != "staging":
            raise ConflictError(
                f"the winner, {info.model} v{winner.version}, is {stage}",
                hint="an ML engineer stages it first; then promote the winner again",
            )
        self.registry.change_stage(info.model, winner.version, "production", by=by)
        with session_scope(self.engine) as session:
            self.audit.append(
                session,
                actor=by.actor,
                action="experiment.promote",
                target=f"experiment:{name}",
                outcome="ok",
                detail={"winner": info.winner, "version": winner.version},
            )
        return self.stop(name, by)

    def _record(self, session: Session, name: str) -> ExperimentRecord:
        record = session.exec(select(ExperimentRecord).where(ExperimentRecord.name == name)).first()
        if record is None:
            raise NotFoundError(f"no experiment named {name!r}")
        return record

    def list(self) -> list[ExperimentInfo]:
        with Session(self.engine) as session:
            names = session.exec(select(ExperimentRecord.name).order_by(col(ExperimentRecord.id)))
            return [self.get(n) for n in names]

    def get(self, name: str) -> ExperimentInfo:
        with Session(self.engine) as session:
            record = self._record(session, name)
            sums = self._summaries(session, record)
        variants = [msgspec.convert(v, VariantSpec) for v in record.variants]
        summaries = [sums.get(v.name, VariantSummary(v.name, 0, 0.0)) for v in variants]
        verdict = decide(
            summaries,
            [v.weight for v in variants],
            metric="rate" if record.metric == "rate" else "mean",
            min_samples=record.min_samples,
            alpha=record.alpha,
            higher_is_better=record.higher_is_better,
        )
        return ExperimentInfo(
            id=record.id or 0,
            name=record.name,
            model=record.model,
            zone=record.zone,
            group=record.group,
            metric=record.metric,
            outcome_min=record.outcome_min,
            outcome_max=record.outcome_max,
            min_samples=record.min_samples,
            status=record.status,
            salt=record.salt,
            created_by=record.created_by,
            created_at=iso_utc(record.created_at),
            variants=[
                VariantResult(
                    name=v.name, version=v.version, weight=v.weight, count=s.count, mean=s.mean
                )
                for v, s in zip(variants, summaries, strict=True)
            ],
            verdict=verdict.status,
            winner=verdict.winner,
            detail=verdict.detail,
            srm_p_value=verdict.srm_p_value,
            comparisons=verdict.comparisons,
        )

    def _summaries(self, session: Session, record: ExperimentRecord) -> dict[str, VariantSummary]:
        totals: dict[str, list[float]] = {}
        for body in session.exec(
            select(AgentReportRecord.body).where(AgentReportRecord.kind == "ab")
        ):
            try:
                summary = msgspec.convert(body, AbSummary)
            except msgspec.ValidationError:
                continue
            if summary.experiment != record.name:
                continue
            slot = totals.setdefault(summary.variant, [0, 0.0, 0.0])
            slot[0] += summary.count
            slot[1] += summary.total
            slot[2] += summary.total_sq
        return {
            name: VariantSummary(name, int(n), total, total_sq)
            for name, (n, total, total_sq) in totals.items()
        }


def _rule(record: ExperimentRecord) -> OutcomeRule:
    return OutcomeRule.of(record.metric, record.outcome_min, record.outcome_max)


def _spec(record: ExperimentRecord) -> ExperimentSpec:
    """A running experiment as agents' signed index carries it."""
    return ExperimentSpec(
        model=record.model,
        salt=record.salt,
        variants=[msgspec.convert(v, VariantSpec) for v in record.variants],
        metric=record.metric,
        outcome_min=record.outcome_min,
        outcome_max=record.outcome_max,
    )
