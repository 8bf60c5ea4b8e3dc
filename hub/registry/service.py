"""The model registry: versions, stages and signed bundles."""

from __future__ import annotations

import io
import math
import re
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any

import msgspec
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlmodel import Session, col, select

from appliance.bundle.format import pack
from appliance.bundle.manifest import Lineage, Tolerance
from appliance.clock import iso_utc, utcnow
from appliance.errors import (
    ApplianceError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    StorageError,
)
from appliance.fsutil import save_stream
from appliance.security.keys import KeyPair
from appliance.wire.fleet import Assignment
from appliance.wire.registry import ModelDetail, ModelSummary, VersionInfo
from hub.artifacts import ArtifactStore
from hub.audit.service import AuditLog
from hub.auth.principal import Principal
from hub.auth.roles import Permission, roles_with
from hub.db import session_scope
from hub.events import Changes
from hub.pagination import page_after
from hub.registry import bundler
from hub.registry.formats.isolated import as_onnx
from hub.registry.records import (
    ApprovalRecord,
    ExposureApprovalRecord,
    ModelRecord,
    ModelVersionRecord,
)
from hub.registry.serving_policy import ServingPolicy, approvals_met, exposure_approvers
from hub.registry.stages import check_transition
from hub.residency.policy import ResidencyPolicy

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def check_model_name(name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInputError(
            f"name: {name!r} is not a valid model name",
            hint="use 1-64 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
        )


def _version_info(
    model: ModelRecord,
    record: ModelVersionRecord,
    approvals: list[str] | None = None,
    exposure: list[str] | None = None,
) -> VersionInfo:
    manifest = record.manifest
    files = manifest.get("files", {})
    return VersionInfo(
        name=model.name,
        version=record.version,
        stage=record.stage,  # type: ignore[arg-type]
        created_at=iso_utc(record.created_at),
        stage_changed_at=iso_utc(record.stage_changed_at),
        metrics=manifest.get("metrics", {}),
        bundle_sha256=record.bundle_sha256,
        bundle_length=record.bundle_length,
        runtimes=["onnxruntime"] + (["openvino"] if "model.xml" in files else []),
        runtime_notes=manifest.get("runtime_notes", {}),
        tolerance=manifest.get("tolerance", {}),
        inputs=manifest.get("inputs", []),
        outputs=manifest.get("outputs", []),
        lineage=manifest.get("lineage", {}),
        created_by=record.created_by,
        zones=list(record.zones),
        approvals=approvals or [],
        exposure_approvals=exposure or [],
    )


def _approvers(session: Session, record: ModelVersionRecord) -> list[str]:
    return [
        a.approver
        for a in session.exec(
            select(ApprovalRecord)
            .where(ApprovalRecord.version_id == record.id)
            .order_by(col(ApprovalRecord.id))
        )
    ]


def _clear_approvals(session: Session, record: ModelVersionRecord) -> None:
    """Approvals are for one trip into production (or live traffic before it): leaving
    production or staging needs fresh ones, of both kinds."""
    for approval in session.exec(
        select(ApprovalRecord).where(ApprovalRecord.version_id == record.id)
    ):
        session.delete(approval)
    for exposure in session.exec(
        select(ExposureApprovalRecord).where(ExposureApprovalRecord.version_id == record.id)
    ):
        session.delete(exposure)


class RegistryService:
    def __init__(
        self,
        engine: Engine,
        store: ArtifactStore,
        key: KeyPair,
        *,
        audit: AuditLog,
        policy: ResidencyPolicy,
        approvals_required: int = 1,
    ) -> None:
        self.engine = engine
        self.store = store
        self.key = key
        self.audit = audit
        self.policy = policy
        self.approvals_required = approvals_required
        self.serving = ServingPolicy(engine, approvals_required)
        """The one rule for what may take live traffic (rollouts, experiments, publishing)."""
        self.changes = Changes()
        """Told after a production version changes: agents' metadata must follow."""

    def _info(
        self,
        model: ModelRecord,
        record: ModelVersionRecord,
        approvals: list[str] | None = None,
        exposure: list[str] | None = None,
    ) -> VersionInfo:
        info = _version_info(model, record, approvals, exposure)
        info.approvals_required = self.approvals_required
        return info

    def _recorded_info(
        self, session: Session, model: ModelRecord, record: ModelVersionRecord
    ) -> VersionInfo:
        """The version with both kinds of approval it holds, as recorded."""
        return self._info(
            model, record, _approvers(session, record), exposure_approvers(session, record)
        )

    # -- reading -----------------------------------------------------------------

    def _model(self, session: Session, name: str) -> ModelRecord:
        model = session.exec(select(ModelRecord).where(ModelRecord.name == name)).first()
        if model is None:
            raise NotFoundError(f"no model named {name!r}")
        return model

    def _version(self, session: Session, model: ModelRecord, version: int) -> ModelVersionRecord:
        record = session.exec(
            select(ModelVersionRecord).where(
                ModelVersionRecord.model_id == model.id, ModelVersionRecord.version == version
            )
        ).first()
        if record is None:
            raise NotFoundError(f"model {model.name!r} has no version {version}")
        return record

    def list_models(self, *, after_name: str = "", limit: int = 100) -> list[ModelSummary]:
        with Session(self.engine) as session:
            models = session.exec(
                page_after(select(ModelRecord), col(ModelRecord.name), after_name, limit)
            ).all()
            production = {
                r.model_id: r.version
                for r in session.exec(
                    select(ModelVersionRecord).where(ModelVersionRecord.stage == "production")
                )
            }
            return [
                ModelSummary(
                    name=m.name,
                    created_at=iso_utc(m.created_at),
                    latest_version=m.last_version,
                    production_version=production.get(m.id or 0),
                )
                for m in models
            ]

    def get_model(self, name: str) -> ModelDetail:
        with Session(self.engine) as session:
            model = self._model(session, name)
            versions = session.exec(
                select(ModelVersionRecord)
                .where(ModelVersionRecord.model_id == model.id)
                .order_by(col(ModelVersionRecord.version))
            ).all()
            return ModelDetail(
                name=model.name,
                created_at=iso_utc(model.created_at),
                versions=[self._recorded_info(session, model, v) for v in versions],
            )

    def get_version(self, name: str, version: int) -> VersionInfo:
        with Session(self.engine) as session:
            model = self._model(session, name)
            record = self._version(session, model, version)
            return self._recorded_info(session, model, record)

    def bundle_file(self, name: str, version: int) -> tuple[Path, VersionInfo]:
        info = self.get_version(name, version)
        return self.store.open_path(info.bundle_sha256), info

    def production_version(self, name: str) -> int | None:
        """The model's production version; ``None`` for none (or no such model yet)."""
        with Session(self.engine) as session:
            return session.exec(
                select(ModelVersionRecord.version)
                .join(ModelRecord, col(ModelVersionRecord.model_id) == col(ModelRecord.id))
                .where(ModelRecord.name == name, ModelVersionRecord.stage == "production")
            ).first()

    def production_assignments(self) -> list[tuple[Assignment, list[str]]]:
        """Every model's production version with its data zones (rollouts refine this)."""
        with Session(self.engine) as session:
            rows = session.exec(
                select(ModelRecord, ModelVersionRecord)
                .join(ModelVersionRecord, col(ModelVersionRecord.model_id) == col(ModelRecord.id))
                .where(ModelVersionRecord.stage == "production")
                .order_by(col(ModelRecord.name))
            ).all()
            return [
                (
                    Assignment(
                        name=m.name,
                        version=v.version,
                        bundle_sha256=v.bundle_sha256,
                        bundle_length=v.bundle_length,
                        bundle_path=f"/api/v1/models/{m.name}/versions/{v.version}/bundle",
                    ),
                    list(v.zones),
                )
                for m, v in rows
            ]

    # -- writing -----------------------------------------------------------------

    def register_version(
        self,
        name: str,
        model: bytes | IO[bytes],
        *,
        reference_npy: bytes | None = None,
        sample: bytes | None = None,
        metrics: dict[str, float] | None = None,
        lineage: dict[str, Any] | None = None,
        zones: list[str] | None = None,
        tolerance: dict[str, Any] | None = None,
        actor: str = "system",
    ) -> VersionInfo:
        """Build, sign and store a bundle; record it as the next candidate version.

        ``model`` (its bytes, or a stream read a chunk at a time: a model may be larger than
        the hub's memory) is an ONNX model, a zip of one with its external-data weights, or
        one in a format :mod:`hub.registry.formats` converts to ONNX (skops, TorchScript,
        torch.export, a zipped MLflow directory).

        ``zones`` are the residency zones of the training data (the model inherits
        them); without them the model belongs to the hub's first zone.
        """
        check_model_name(name)
        data_zones = list(self.policy.check_zones(zones or self.policy.zones[:1], "zones"))
        try:
            lineage_obj = msgspec.convert(lineage or {}, Lineage)
            metrics_obj = msgspec.convert(metrics or {}, dict[str, float])
            tolerance_obj = msgspec.convert(tolerance or {}, Tolerance)
        except msgspec.ValidationError as exc:
            raise InvalidInputError(f"metadata: {exc}") from exc
        if not all(0 <= t <= 1 for t in (tolerance_obj.atol, tolerance_obj.rtol)):
            raise InvalidInputError("metadata.tolerance: atol and rtol between 0 and 1")
        bad = sorted(k for k, v in metrics_obj.items() if not math.isfinite(v))
        if bad:
            raise InvalidInputError(f"metadata.metrics: {bad} must be finite numbers")
        work = Path(tempfile.mkdtemp(dir=self.store.root / "tmp"))
        try:
            bundle_dir = work / "bundle"
            bundle_dir.mkdir()
            upload = work / "upload"  # a stream (a spooled part) goes a chunk at a time
            stream = io.BytesIO(model) if isinstance(model, bytes) else model
            uploaded, _ = save_stream(stream, upload)
            onnx_path, fmt = as_onnx(upload, sample, work)
            prepared = bundler.prepare(bundle_dir, onnx_path, reference_npy, sample, tolerance_obj)
            received = {"format": fmt.value, "upload_sha256": uploaded}
            record = (name, prepared, metrics_obj, lineage_obj, work, data_zones, actor, received)
            try:
                return self._seal_and_record(*record)
            except SAIntegrityError:
                # Another upload created the model or took the version first; the
                # second attempt sees its row and takes the next number.
                return self._seal_and_record(*record)
        except OSError as exc:
            raise StorageError(
                f"hub could not store version of {name!r}: {exc.strerror or exc}",
                hint="free space in the hub's data directory and upload again; "
                "nothing was recorded",
            ) from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _seal_and_record(
        self,
        name: str,
        prepared: bundler.Prepared,
        metrics: dict[str, float],
        lineage: Lineage,
        work: Path,
        zones: list[str],
        actor: str,
        received: dict[str, str],
    ) -> VersionInfo:
        with session_scope(self.engine) as session:
            model = session.exec(
                select(ModelRecord).where(ModelRecord.name == name).with_for_update()
            ).first()
            if model is None:
                model = ModelRecord(name=name)
                session.add(model)
                session.flush()
            model.last_version += 1
            manifest = bundler.seal(
                prepared,
                name=name,
                version=model.last_version,
                metrics=metrics,
                lineage=lineage,
                key=self.key,
            )
            tar_path = work / f"bundle-{model.last_version}.tar"
            tar_path.unlink(missing_ok=True)
            pack(prepared.folder, tar_path)
            digest, length = self.store.put_file(tar_path)
            record = ModelVersionRecord(
                model_id=model.id,  # type: ignore[arg-type]
                version=model.last_version,
                bundle_sha256=digest,
                bundle_length=length,
                manifest=msgspec.to_builtins(manifest),
                created_by=actor,
                zones=zones,
            )
            session.add(model)
            session.add(record)
            session.flush()
            self.audit.append(
                session,
                actor=actor,
                action="model.upload",
                target=f"model:{name}/{record.version}",
                outcome="ok",
                detail={"bundle_sha256": digest, "zones": zones, **received},
            )
            return self._info(model, record)

    def change_stage(self, name: str, version: int, stage: str, *, by: Principal) -> VersionInfo:
        """Move a version; into or out of production only with approval.

        Production needs ``approvals_required`` distinct approvers other than the
        author (:func:`~hub.registry.serving_policy.approvals_met`). Asking for
        production records the caller's approval; the stage changes once enough
        approvals are in (the answer says how many). Any other move clears the
        version's approvals: each trip into production is approved afresh.
        """
        with session_scope(self.engine) as session:
            model = self._model(session, name)
            record = self._version(session, model, version)
            touches_production = "production" in (stage, record.stage)
            needed = Permission.MODELS_APPROVE if touches_production else Permission.MODELS_STAGE
            if needed not in by.permissions:
                raise PermissionDeniedError(
                    f"moving {name} v{version} from {record.stage} to {stage} needs {needed} "
                    f"(roles: {', '.join(roles_with(needed))})"
                )
            check_transition(name, version, record.stage, stage)
            target = f"model:{name}/{version}"
            if stage == "production":
                approvers = self._approve(session, record, by, target)
                if not approvals_met(approvers, record.created_by, self.approvals_required):
                    session.flush()
                    return self._info(model, record, approvers)
            now = utcnow()
            replaced: list[int] = []
            if stage == "production":
                for previous in session.exec(
                    select(ModelVersionRecord).where(
                        ModelVersionRecord.model_id == model.id,
                        ModelVersionRecord.stage == "production",
                    )
                ):
                    previous.stage = "archived"
                    previous.stage_changed_at = now
                    session.add(previous)
                    _clear_approvals(session, previous)
                    replaced.append(previous.version)
            else:
                _clear_approvals(session, record)
            self.audit.append(
                session,
                actor=by.actor,
                action="model.stage_change",
                target=target,
                outcome="ok",
                detail={"from": record.stage, "to": stage, "archived": replaced},
            )
            record.stage = stage
            record.stage_changed_at = now
            session.add(record)
            session.flush()
            info = self._info(model, record, _approvers(session, record))
        # Every move may change what serves: production, and (via the serving policy) the
        # rings and variants a staging version held; publishing signs only what differs.
        self.changes.announce(by.actor, f"{name} v{version} moved to {stage}")
        return info

    def _approve(
        self, session: Session, record: ModelVersionRecord, by: Principal, target: str
    ) -> list[str]:
        approvers = _approvers(session, record)
        if by.actor not in approvers:
            session.add(ApprovalRecord(version_id=record.id or 0, approver=by.actor))
            approvers.append(by.actor)
            self.audit.append(
                session,
                actor=by.actor,
                action="model.approve",
                target=target,
                outcome="ok",
                detail={
                    "approvals": len(approvers),
                    "required": self.approvals_required,
                    "author": record.created_by,
                },
            )
        return approvers

    def approve_exposure(
        self, name: str, version: int, *, by: Principal, strict: bool = True
    ) -> VersionInfo:
        """Record ``by``'s consent that a staging version may take live traffic before
        production (rollout rings, blue-green standby, A/B variants).

        ``strict`` (the explicit endpoint) refuses a caller without ``models:approve``, the
        author, and a version not in staging; rollouts and experiments call it with
        ``strict=False`` for the approver who starts them, where it records what it can and
        leaves the refusal to :meth:`ServingPolicy.require`.
        """
        with session_scope(self.engine) as session:
            model = self._model(session, name)
            record = self._version(session, model, version)
            target = f"model:{name}/{version}"
            problem: ApplianceError | None = None
            if Permission.MODELS_APPROVE not in by.permissions:
                problem = PermissionDeniedError(
                    f"approving exposure of {name} v{version} needs {Permission.MODELS_APPROVE} "
                    f"(roles: {', '.join(roles_with(Permission.MODELS_APPROVE))})"
                )
            elif by.actor == record.created_by:
                problem = PermissionDeniedError(
                    f"{by.actor} is the author of {name} v{version} and cannot approve it",
                    hint="another approver approves exposure",
                )
            elif record.stage != "staging":
                problem = ConflictError(
                    f"{name} v{version} is {record.stage}; exposure is approved for staging "
                    "versions",
                    hint="an ML engineer stages it first",
                )
            if problem is not None:
                if strict:
                    raise problem
            elif by.actor not in (given := exposure_approvers(session, record)):
                session.add(ExposureApprovalRecord(version_id=record.id or 0, approver=by.actor))
                session.flush()
                self.audit.append(
                    session,
                    actor=by.actor,
                    action="model.approve_exposure",
                    target=target,
                    outcome="ok",
                    detail={
                        "approvals": len(given) + 1,
                        "required": self.approvals_required,
                        "author": record.created_by,
                    },
                )
            info = self._recorded_info(session, model, record)
        self.changes.announce(by.actor, f"{name} v{version} exposure approved")
        return info
