"""Publishing what each agent group may install, as signed TUF metadata.

The desired state is computed from the records each time: for every group
with enrolled agents, the production version of every model that residency
allows in the group's zone. The repository signs only what differs, so
publishing twice changes nothing. Encrypted targets are made once per bundle
(one random data key, kept under ``keys/bundles``) and the key is wrapped to
each agent once; repeated publications reuse both, so metadata does not churn.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import msgspec
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from tuf.api.metadata import TargetFile

from appliance.clock import iso_utc, utcnow
from appliance.errors import (
    ConfigError,
    NotFoundError,
    PermissionDeniedError,
    UnprocessableInputError,
)
from appliance.fsutil import atomic_write_bytes
from appliance.security.sealing import encrypt_file, load_public_pem, new_data_key, wrap_key
from appliance.settings import UpdateSettings
from appliance.trust.layout import (
    AgentKeys,
    Encryption,
    ExperimentSpec,
    GroupIndex,
    KeyGrant,
    ModelTarget,
    group_of_role,
    group_role,
    index_path,
    index_role,
    keys_path,
    model_path,
    seal_aad,
    wrap_context,
)
from appliance.trust.offline import METADATA_PREFIX, TARGETS_PREFIX, UpdateHeader, write_bundle
from appliance.wire.fleet import Assignment
from hub.artifacts import ArtifactStore
from hub.audit.service import AuditLog
from hub.auth.principal import Principal
from hub.db import session_scope
from hub.fleet.records import AgentRecord
from hub.pagination import page_after
from hub.registry.service import RegistryService
from hub.residency.gate import ResidencyGate
from hub.updates.records import PublicationRecord, SealedBundleRecord
from hub.updates.repository import GroupTargets, Publication, UpdateRepository


@dataclass(frozen=True)
class _Member:
    id: int
    encryption_key: str | None


class PublicationInfo(msgspec.Struct, kw_only=True):
    id: int
    at: str
    actor: str
    reason: str
    timestamp_version: int
    snapshot_version: int
    changed: list[str]
    groups: dict[str, dict[str, int]]


def _info(record: PublicationRecord) -> PublicationInfo:
    return PublicationInfo(
        id=record.id or 0,
        at=iso_utc(record.at),
        actor=record.actor,
        reason=record.reason,
        timestamp_version=record.timestamp_version,
        snapshot_version=record.snapshot_version,
        changed=list(record.changed),
        groups=dict(record.groups),
    )


class UpdateService:
    def __init__(
        self,
        engine: Engine,
        registry: RegistryService,
        artifacts: ArtifactStore,
        repository: UpdateRepository,
        gate: ResidencyGate,
        audit: AuditLog,
        bundle_keys: Path,
        settings: UpdateSettings,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.artifacts = artifacts
        self.repository = repository
        self.gate = gate
        self.policy = gate.policy
        self.audit = audit
        self.bundle_keys = bundle_keys
        self.settings = settings
        self.experiment_source: Callable[[str, str], dict[str, ExperimentSpec]] | None = None
        """Running A/B experiments of a (zone, group): their variants are published too."""
        self.pin_source: Callable[[str, str], dict[str, dict[str, int]]] | None = None
        """Agents reached by active rollouts: their pinned versions are published too."""
        self.standby_source: Callable[[str, str], dict[str, dict[str, int]]] | None = None
        """Versions blue-green rollouts keep loaded beside the default, per agent."""
        self.key_source: Callable[[str, str], dict[str, KeyGrant]] | None = None
        """The live inference keys of a (zone, group): agents check client keys with them."""

    # -- publishing ---------------------------------------------------------------------

    def initialise(self) -> None:
        self.repository.initialise()
        self.publish(actor="system", reason="hub start")

    def _members(self) -> dict[tuple[str, str], list[_Member]]:
        groups: dict[tuple[str, str], list[_Member]] = defaultdict(list)
        with Session(self.engine) as session:
            for agent in session.exec(
                select(AgentRecord)
                .where(col(AgentRecord.revoked_at).is_(None))
                .order_by(col(AgentRecord.id))
            ):
                groups[(agent.zone, agent.group)].append(
                    _Member(agent.id or 0, agent.encryption_key)
                )
        return groups

    def _desired(self) -> tuple[list[GroupTargets], dict[str, dict[str, int]]]:
        production = self.registry.production_assignments()
        wanted: list[GroupTargets] = []
        summary: dict[str, dict[str, int]] = {}
        members = self._members()
        for zone, group in sorted(set(members) | set(self.repository.groups())):
            group_members = members.get((zone, group), [])
            targets: dict[str, TargetFile] = {}
            versions: dict[str, int] = {}
            wrapped: dict[int, dict[str, dict[str, str]]] = {m.id: {} for m in group_members}
            experiments = self.experiment_source(zone, group) if self.experiment_source else {}
            pins = self.pin_source(zone, group) if self.pin_source else {}
            standby = self.standby_source(zone, group) if self.standby_source else {}
            extra_versions = {
                (e.model, v.version) for e in experiments.values() for v in e.variants
            }
            for per_agent in (pins, standby):
                extra_versions |= {(m, v) for agent in per_agent.values() for m, v in agent.items()}
            # The one serving policy again: a version that lost its approvals since its
            # rollout or experiment began is not published (pins and variants naming it drop).
            extra_versions = self.registry.serving.live(extra_versions)
            needed = [(a, z, True) for a, z in production] + [
                (*self._variant(model, version), False) for model, version in sorted(extra_versions)
            ]
            for assignment, zones, is_default in needed:
                if not self.policy.decide("deploy", zone, zones).allowed:
                    continue
                target, keys = self._model_target(zone, group, assignment, group_members)
                targets[target.path] = target
                if is_default:
                    versions[assignment.name] = assignment.version
                for agent_id, key in keys.items():
                    wrapped[agent_id][target.path] = key
            if self.settings.encrypt:
                for agent_id, agent_keys in wrapped.items():
                    blob = msgspec.json.encode(AgentKeys(agent_id=agent_id, keys=agent_keys))
                    keys_target = self._blob_target(keys_path(zone, group, agent_id), blob)
                    targets[keys_target.path] = keys_target
            allowed = {
                name: spec
                for name, spec in experiments.items()
                if all(
                    model_path(zone, group, spec.model, v.version) in targets for v in spec.variants
                )
            }
            index = GroupIndex(
                zone=zone,
                group=group,
                models=versions,
                experiments=allowed,
                pins=_published(pins, zone, group, targets),
                standby=_published(standby, zone, group, targets),
                keys=self.key_source(zone, group) if self.key_source else {},
            )
            index_target = self._blob_target(index_path(zone, group), msgspec.json.encode(index))
            wanted.append(GroupTargets(zone, group, index_target, targets))
            summary[group_role(zone, group)] = versions
        return wanted, summary

    def _variant(self, model: str, version: int) -> tuple[Assignment, list[str]]:
        info = self.registry.get_version(model, version)
        assignment = Assignment(
            name=model,
            version=version,
            bundle_sha256=info.bundle_sha256,
            bundle_length=info.bundle_length,
            bundle_path=f"/api/v1/models/{model}/versions/{version}/bundle",
        )
        return assignment, list(info.zones)

    def _blob_target(self, path: str, data: bytes) -> TargetFile:
        with tempfile.NamedTemporaryFile(dir=self.artifacts.root / "tmp", delete=False) as tmp:
            tmp.write(data)
        try:
            digest, length = self.artifacts.put_file(Path(tmp.name))
        finally:
            os.unlink(tmp.name)
        return TargetFile(length=length, hashes={"sha256": digest}, path=path)

    def _model_target(
        self, zone: str, group: str, assignment: Assignment, members: list[_Member]
    ) -> tuple[TargetFile, dict[int, dict[str, str]]]:
        """The bundle target for a group, and its data key wrapped for each member."""
        path = model_path(zone, group, assignment.name, assignment.version)
        custom = ModelTarget(model=assignment.name, version=assignment.version)
        if not self.settings.encrypt:
            plain = TargetFile(
                length=assignment.bundle_length,
                hashes={"sha256": assignment.bundle_sha256},
                path=path,
                unrecognized_fields={"custom": msgspec.to_builtins(custom)},
            )
            return plain, {}
        sealed = self._sealed(assignment, path, members)
        keys = {
            m.id: sealed.wrapped[_wrap_key_id(path, m.id)]
            for m in members
            if _wrap_key_id(path, m.id) in sealed.wrapped
        }
        custom = msgspec.structs.replace(
            custom, encryption=Encryption(plain_length=sealed.plain_length)
        )
        target = TargetFile(
            length=sealed.sealed_length,
            hashes={"sha256": sealed.sealed_sha256},
            path=path,
            unrecognized_fields={"custom": msgspec.to_builtins(custom)},
        )
        return target, keys

    def _data_key(self, bundle_sha256: str) -> bytes:
        path = self.bundle_keys / f"{bundle_sha256}.key"
        if path.exists():
            return path.read_bytes()
        self.bundle_keys.mkdir(parents=True, exist_ok=True)
        os.chmod(self.bundle_keys, 0o700)
        key = new_data_key()
        atomic_write_bytes(path, key, mode=0o600)
        return key

    def _sealed(
        self, assignment: Assignment, path: str, members: list[_Member]
    ) -> SealedBundleRecord:
        """The encrypted bundle, made once; the data key wrapped to members who lack it."""
        with session_scope(self.engine) as session:
            record = session.get(SealedBundleRecord, assignment.bundle_sha256)
            data_key = self._data_key(assignment.bundle_sha256)
            if record is None:
                plain = self.artifacts.open_path(assignment.bundle_sha256)
                fd, tmp = tempfile.mkstemp(dir=self.artifacts.root / "tmp")
                os.close(fd)
                try:
                    encrypt_file(
                        plain,
                        Path(tmp),
                        data_key,
                        seal_aad(assignment.name, assignment.version),
                    )
                    digest, length = self.artifacts.put_file(Path(tmp))
                finally:
                    os.unlink(tmp)
                record = SealedBundleRecord(
                    bundle_sha256=assignment.bundle_sha256,
                    sealed_sha256=digest,
                    sealed_length=length,
                    plain_length=assignment.bundle_length,
                )
            wrapped = dict(record.wrapped)
            for member in members:
                kid = _wrap_key_id(path, member.id)
                if member.encryption_key is None or kid in wrapped:
                    continue
                recipient = load_public_pem(member.encryption_key)
                wrapped[kid] = wrap_key(data_key, recipient, wrap_context(path, member.id))
            record.wrapped = wrapped
            session.add(record)
            session.flush()
            session.expunge(record)
            return record

    def publish(
        self, *, actor: str, reason: str, valid_for: timedelta | None = None
    ) -> Publication:
        with self.repository.lock:
            wanted, summary = self._desired()
            publication = self.repository.publish(wanted, valid_for=valid_for)
            if publication.changed:
                self._record(publication, actor=actor, reason=reason, summary=summary)
            return publication

    def on_change(self, actor: str, reason: str) -> None:
        self.publish(actor=actor, reason=reason)

    def refresh(self) -> Publication | None:
        """The scheduler's job: re-sign metadata nearing expiry."""
        publication = self.repository.refresh()
        if publication is not None:
            self._record(publication, actor="system", reason="scheduled re-signing", summary={})
        return publication

    def _record(
        self,
        publication: Publication,
        *,
        actor: str,
        reason: str,
        summary: dict[str, dict[str, int]],
    ) -> None:
        with session_scope(self.engine) as session:
            record = PublicationRecord(
                actor=actor,
                reason=reason[:256],
                timestamp_version=publication.timestamp,
                snapshot_version=publication.snapshot,
                changed=publication.changed,
                groups=summary,
            )
            session.add(record)
            session.flush()
            self.audit.append(
                session,
                actor=actor,
                action="updates.publish",
                target=f"publication:{record.id}",
                outcome="ok",
                detail={
                    "reason": reason[:256],
                    "timestamp": publication.timestamp,
                    "snapshot": publication.snapshot,
                    "changed": publication.changed,
                },
            )

    def publications(self, *, after_id: int = 0, limit: int = 100) -> list[PublicationInfo]:
        with Session(self.engine) as session:
            rows = session.exec(
                page_after(select(PublicationRecord), col(PublicationRecord.id), after_id, limit)
            )
            return [_info(r) for r in rows]

    # -- serving ------------------------------------------------------------------------

    def metadata_file(self, principal: Principal, filename: str) -> Path:
        """A metadata file, if the caller may read it: agents see only their own group's role."""
        if "/" in filename or not filename.endswith(".json") or filename.startswith("."):
            raise NotFoundError(f"no metadata {filename!r}")
        role = filename.removesuffix(".json")
        version, _, rest = role.partition(".")
        if version.isdigit():
            role = rest
        if (
            principal.kind == "agent"
            and "." in role
            and group_of_role(role) != self._group_of(principal)
        ):
            raise NotFoundError(f"no metadata {filename!r}")
        if role == "root" and not version.isdigit():  # the current root, for pinning
            return self.repository.path(f"{self.repository.root().signed.version}.root.json")
        path = self.repository.path(filename)
        if not path.is_file():
            raise NotFoundError(f"no metadata {filename!r}")
        return path

    def target_file(self, principal: Principal, path: str, source: str | None = None) -> Path:
        """A target the current metadata lists for the caller's group, by its hashed name.

        A model leaving for an agent passes the residency gate again (and is audited
        there): policy may have changed since the metadata was signed.
        """
        folder, _, hashed = path.rpartition("/")
        digest, _, name = hashed.partition(".")
        zone, _, group = folder.partition("/")
        logical = f"{folder}/{name}"
        if principal.kind == "agent" and (zone, group) != self._group_of(principal):
            raise NotFoundError(f"no target {path!r} for this agent")
        role = index_role(zone, group) if logical == index_path(zone, group) else None
        try:
            role = role or group_role(zone, group)
            listed = self.repository.targets(role).signed.targets.get(logical)
        except (KeyError, OSError, ConfigError) as exc:
            raise NotFoundError(f"no target {path!r}") from exc
        if listed is None or listed.hashes.get("sha256") != digest:
            raise NotFoundError(f"no target {path!r} in the current metadata")
        custom = listed.custom
        if principal.kind == "agent" and isinstance(custom, dict) and "model" in custom:
            self._check_residency(principal, str(custom["model"]), int(custom["version"]), source)
        return self.artifacts.open_path(digest)

    def _check_residency(
        self, principal: Principal, model: str, version: int, source: str | None
    ) -> None:
        zones = self.registry.get_version(model, version).zones
        with session_scope(self.engine) as session:
            agent = session.get(AgentRecord, principal.id)
            if agent is None:
                raise PermissionDeniedError("unknown agent")
            self.gate.check(
                session,
                flow="deploy",
                actor=principal.actor,
                subject_zone=agent.zone,
                object_zones=zones,
                target=f"model:{model}/{version} to agent:{agent.name}",
                source=source,
            )

    def _group_of(self, principal: Principal) -> tuple[str, str]:
        with Session(self.engine) as session:
            agent = session.get(AgentRecord, principal.id)
            if agent is None:
                raise PermissionDeniedError("unknown agent")
            return agent.zone, agent.group

    # -- offline bundles -----------------------------------------------------------------

    def export_offline(
        self, *, zone: str, group: str, out: Path, actor: str, days: int | None = None
    ) -> UpdateHeader:
        """Write one group's metadata chain and targets to ``out``, valid for ``days``."""
        roles = (index_role(zone, group), group_role(zone, group))
        days = self.settings.offline_days if days is None else days
        if not 1 <= days <= self.settings.offline_max_days:
            raise UnprocessableInputError(
                f"days: {days} is outside 1 to {self.settings.offline_max_days}",
                hint="an offline bundle stays valid at most APPLIANCE_OFFLINE_MAX_DAYS days "
                "(a longer one would let a stale bundle freeze agents on old models); "
                "export a fresh bundle instead",
            )
        with self.repository.lock:
            publication = self.publish(
                actor=actor,
                reason=f"offline export for {zone}/{group} valid {days} days",
                valid_for=timedelta(days=days),
            )
            if roles[1] not in publication.roles:
                raise NotFoundError(
                    f"no agents are enrolled in group {group!r} of zone {zone!r}",
                    hint="enrol the group's agents first: model keys are wrapped to them",
                )
            repo = self.repository
            timestamp = repo.timestamp()
            snapshot = repo.snapshot()
            files: dict[str, Path] = {}
            for version in range(1, repo.root().signed.version + 1):
                name = f"{version}.root.json"
                files[METADATA_PREFIX + name] = repo.path(name)
            files[METADATA_PREFIX + "timestamp.json"] = repo.path("timestamp.json")
            snap_name = f"{snapshot.signed.version}.snapshot.json"
            files[METADATA_PREFIX + snap_name] = repo.path(snap_name)
            for meta_role in ("targets", *roles):
                version = snapshot.signed.meta[f"{meta_role}.json"].version
                name = f"{version}.{meta_role}.json"
                files[METADATA_PREFIX + name] = repo.path(name)
            targets = {p: t for r in roles for p, t in repo.targets(r).signed.targets.items()}
            for target in targets.values():
                digest = target.hashes["sha256"]
                folder, _, base = target.path.rpartition("/")
                member = f"{TARGETS_PREFIX}{folder}/{digest}.{base}"
                files[member] = self.artifacts.open_path(digest)
            now = utcnow()
            header = UpdateHeader(
                zone=zone,
                group=group,
                created_at=iso_utc(now),
                expires_at=iso_utc(timestamp.signed.expires),
                timestamp_version=timestamp.signed.version,
                hub=hashlib.sha256(repo.root_bytes(1)).hexdigest()[:16],
                models=publication_models(targets),
            )
            write_bundle(out, header, files)
            repo.shorten_timestamp()
        return header


def publication_models(targets: dict[str, TargetFile]) -> dict[str, int]:
    models = {}
    for target in targets.values():
        custom = target.unrecognized_fields.get("custom")
        if isinstance(custom, dict) and "model" in custom:
            models[str(custom["model"])] = int(custom["version"])
    return models


def _wrap_key_id(path: str, agent_id: int) -> str:
    return wrap_context(path, agent_id).decode()


def _published(
    per_agent: dict[str, dict[str, int]], zone: str, group: str, targets: dict[str, TargetFile]
) -> dict[str, dict[str, int]]:
    """Agent → model → version, keeping only versions the group may have (residency)."""
    return {
        agent: {m: v for m, v in models.items() if model_path(zone, group, m, v) in targets}
        for agent, models in per_agent.items()
    }
