"""The hub's services, built once from its settings and shared by every handler."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

from sqlalchemy.engine import Engine

from appliance.security.keys import KeyPair, init_keypair, keys_dir
from appliance.settings import HubSettings
from hub import schema
from hub.access.service import InferenceKeys
from hub.agent_releases.service import FOLDER as AGENT_RELEASES
from hub.agent_releases.service import AgentReleases
from hub.agent_upgrades.service import AgentUpgrades
from hub.artifacts import ArtifactStore
from hub.audit.service import AuditLog
from hub.backup import backup_before_migrating
from hub.db import make_engine
from hub.experiments.service import ExperimentService
from hub.features.service import FeatureStore
from hub.fleet.certificates import SiteCertificates
from hub.fleet.enrolment import EnrolmentService
from hub.fleet.service import FleetService
from hub.fleet.standing import AgentStanding
from hub.identity.service import IdentityService
from hub.identity.tokens import JwtKeyring, TokenSettings
from hub.monitoring.service import MonitoringService
from hub.registry.service import RegistryService
from hub.residency.gate import ResidencyGate
from hub.residency.policy import ResidencyPolicy
from hub.rollouts.service import RolloutService
from hub.training.jobs import TrainingJobs
from hub.training.schedules import RetrainingSchedules
from hub.updates.repository import UpdateRepository
from hub.updates.service import UpdateService


@dataclass(frozen=True)
class HubServices:
    engine: Engine
    key: KeyPair
    audit: AuditLog
    policy: ResidencyPolicy
    registry: RegistryService
    fleet: FleetService
    identity: IdentityService
    enrolment: EnrolmentService
    checkpoint_minutes: float
    features: FeatureStore
    features_materialize_minutes: float
    updates: UpdateService
    monitoring: MonitoringService
    experiments: ExperimentService
    rollouts: RolloutService
    training: TrainingJobs
    schedules: RetrainingSchedules
    inference_keys: InferenceKeys
    agent_releases: AgentReleases
    agent_upgrades: AgentUpgrades


def load_policy(settings: HubSettings) -> ResidencyPolicy:
    path = settings.residency_policy or settings.data_dir / "residency.toml"
    if settings.residency_policy is not None or path.exists():
        return ResidencyPolicy.load(path)
    return ResidencyPolicy.single_zone(settings.zone)


def build_services(settings: HubSettings, *, migrate: bool = False) -> HubServices:
    """Every service over one database, which must be at the code's schema revision: an
    empty one is created; one behind is refused unless ``migrate``, which backs the hub up
    first (:mod:`hub.schema`)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    schema.prepare(engine, migrate=migrate, backup=partial(backup_before_migrating, settings))
    key = init_keypair(keys_dir(settings.data_dir))
    audit = AuditLog(key)
    policy = load_policy(settings)
    artifacts = ArtifactStore(settings.data_dir / "artifacts")
    registry = RegistryService(
        engine,
        artifacts,
        key,
        audit=audit,
        policy=policy,
        approvals_required=settings.releases.approvals_required,
    )
    gate = ResidencyGate(engine, policy, audit)
    identity = IdentityService(
        engine,
        JwtKeyring(keys_dir(settings.data_dir) / "jwt"),
        TokenSettings(),
        audit,
        zones=tuple(policy.zones),
    )
    site_certificates = SiteCertificates.for_hub(settings.fleet.site_ca, settings.data_dir)
    enrolment = EnrolmentService(engine, policy, audit, certificates=site_certificates)
    experiments = ExperimentService(
        engine, registry, audit, max_days=settings.releases.max_experiment_days
    )
    rollouts = RolloutService(engine, registry, audit, max_soak_s=settings.releases.max_soak_s)
    inference_keys = InferenceKeys(engine, audit, policy, site_certificates)
    updates = _updates(settings, engine, registry, artifacts, gate, audit)
    _publish_from(updates, registry, enrolment, experiments, rollouts, inference_keys)
    features = FeatureStore(
        engine, settings.data_dir / "features", audit=audit, gate=gate, home_zone=settings.zone
    )
    standing = AgentStanding(
        stale_after_s=settings.fleet.stale_s,
        refusal_window_s=settings.fleet.refused_reports_window_s,
    )
    monitoring = MonitoringService(
        engine, audit, alert_windows=settings.fleet.drift_alert_windows, standing=standing
    )
    training = TrainingJobs(
        engine, features, registry, policy, audit, lease_s=settings.schedule.training_lease_s
    )
    schedules = RetrainingSchedules(engine, training, audit)
    monitoring.on_alert(schedules.on_drift_alert)
    monitoring.ab_check = experiments.summary_refusal
    agent_releases = AgentReleases(
        engine, audit, settings.data_dir / AGENT_RELEASES, settings.release_key
    )
    agent_upgrades = AgentUpgrades(
        engine,
        agent_releases,
        audit,
        policy,
        max_soak_s=settings.releases.max_soak_s,
        install_grace_s=settings.releases.agent_install_grace_s,
    )
    fleet = FleetService(
        engine, registry, gate, sealed_only=settings.updates.encrypt, standing=standing
    )
    fleet.heartbeat_hooks.append(agent_upgrades.on_heartbeat)
    fleet.software_for = agent_upgrades.target_for
    return HubServices(
        engine=engine,
        key=key,
        audit=audit,
        policy=policy,
        registry=registry,
        fleet=fleet,
        identity=identity,
        enrolment=enrolment,
        checkpoint_minutes=settings.schedule.audit_checkpoint_minutes,
        features=features,
        features_materialize_minutes=settings.schedule.features_materialize_minutes,
        updates=updates,
        monitoring=monitoring,
        experiments=experiments,
        rollouts=rollouts,
        training=training,
        schedules=schedules,
        inference_keys=inference_keys,
        agent_releases=agent_releases,
        agent_upgrades=agent_upgrades,
    )


def _updates(
    settings: HubSettings,
    engine: Engine,
    registry: RegistryService,
    artifacts: ArtifactStore,
    gate: ResidencyGate,
    audit: AuditLog,
) -> UpdateService:
    keys = keys_dir(settings.data_dir)
    return UpdateService(
        engine,
        registry,
        artifacts,
        UpdateRepository(settings.data_dir / "tuf", keys / "tuf"),
        gate,
        audit,
        keys / "bundles",
        replace(
            settings.updates,
            offline_max_days=max(settings.updates.offline_max_days, settings.updates.offline_days),
        ),
    )


def _publish_from(
    updates: UpdateService,
    registry: RegistryService,
    enrolment: EnrolmentService,
    experiments: ExperimentService,
    rollouts: RolloutService,
    inference_keys: InferenceKeys,
) -> None:
    """What agents are sent follows every change that alters it; then the first publication.

    Publish only once every source is wired: a first publication without them would drop
    running experiments, rollout pins and inference keys from agents' metadata.
    """
    updates.experiment_source = experiments.running_for
    updates.pin_source = rollouts.pins_for
    updates.standby_source = rollouts.standby_for
    updates.key_source = inference_keys.grants_for
    for source in (experiments, rollouts, inference_keys, registry, enrolment):
        source.changes.subscribe(updates.on_change)
    updates.initialise()
