"""The parts of a running agent, as :func:`agent.app.build_core` assembles them."""

from __future__ import annotations

from dataclasses import dataclass

from agent.access import DataPlaneAccess
from agent.drift.monitor import DriftMonitor
from agent.experiments import ExperimentRouter
from agent.follower import InstallFollower
from agent.inference import InferenceCore
from agent.installer import InstallPolicy
from agent.lanes import InferenceLanes
from agent.metrics import AgentMetrics
from agent.outbox import Outbox
from agent.peers import Peers
from agent.repository import ModelRepository
from agent.store import BundleStore
from agent.sync import SyncWorker
from appliance.settings import AgentSettings


@dataclass
class AgentCore:
    settings: AgentSettings
    store: BundleStore
    repository: ModelRepository
    policy: InstallPolicy
    outbox: Outbox
    drift: DriftMonitor
    metrics: AgentMetrics
    router: ExperimentRouter
    access: DataPlaneAccess
    lanes: InferenceLanes
    inference: InferenceCore
    """The one inference core the HTTP and gRPC fronts share."""
    sync: SyncWorker | None = None
    follower: InstallFollower | None = None
    """Set in a serving process of ``--workers N``: it serves what the owner installs."""
    peers: Peers | None = None
    """The other processes of a ``--workers N`` agent (:mod:`agent.peers`)."""

    @property
    def role(self) -> str:
        """``owner`` (syncs, installs, reports) or ``serving`` (:mod:`agent.follower`)."""
        return "serving" if self.follower else "owner"
