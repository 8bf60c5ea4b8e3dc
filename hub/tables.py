"""Every table of the hub, in one place: each domain's ``records`` module registers its
tables on ``SQLModel.metadata`` when imported. :mod:`hub.schema` creates and migrates them
(Alembic); ``hub.db`` (engines and sessions) knows no domain."""

from __future__ import annotations

from hub.access import records as access_records  # noqa: F401
from hub.agent_releases import records as agent_release_records  # noqa: F401
from hub.agent_upgrades import records as agent_upgrade_records  # noqa: F401
from hub.audit import records as audit_records  # noqa: F401
from hub.experiments import records as experiment_records  # noqa: F401
from hub.features import records as feature_records  # noqa: F401
from hub.fleet import records as fleet_records  # noqa: F401
from hub.identity import records as identity_records  # noqa: F401
from hub.monitoring import records as monitoring_records  # noqa: F401
from hub.registry import records as registry_records  # noqa: F401
from hub.rollouts import records as rollout_records  # noqa: F401
from hub.training import records as training_records  # noqa: F401
from hub.updates import records as update_records  # noqa: F401
