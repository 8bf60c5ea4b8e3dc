"""How roles and targets are named in the hub's TUF repository.

Each agent group has two delegated targets roles, trusted only for paths under
``<zone>/<group>/``. An agent asks only for paths under its own group, so a
target published for another group can never reach it, even if the hub's
transport or storage is tampered with.

* ``<zone>.<group>.index`` holds one target, ``<zone>/<group>/index.json``: the
  models the group runs and their versions. It is small, and it is all a sync
  round with nothing new has to verify, however many models the group has.
* ``<zone>.<group>`` holds the rest: ``<zone>/<group>/<model>.v<version>.tar``,
  one bundle per model version the group needs (the production one, and the
  variants of running A/B experiments), plain or encrypted (see
  :mod:`appliance.security.sealing`) and described in ``custom``; and
  ``<zone>/<group>/agent-<id>.keys.json``, each agent's wrapped data keys, so
  the signed metadata grows with models plus agents, not with their product.
  It is read only when the index shows a version to install.

Agents cannot list a role's targets through ngclient, hence the index; it is
itself a TUF target, so its length and hashes are verified like a model's.
"""

from __future__ import annotations

import re
from datetime import timedelta

import msgspec

from appliance.errors import InvalidInputError

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
"""Zones and groups: no dots or slashes, so role names and paths stay unambiguous."""

EXPIRY = {
    "root": timedelta(days=365),
    "targets": timedelta(days=90),
    "group": timedelta(days=30),
    "snapshot": timedelta(days=7),
    "timestamp": timedelta(days=1),
}
"""How long each role's metadata stays valid when signed online (timestamp is re-signed hourly)."""

ENCRYPTION_ALG = "A256GCM-STREAM"


def check_name(kind: str, value: str) -> str:
    if not NAME.fullmatch(value):
        raise InvalidInputError(
            f"{kind}: {value!r} cannot name a TUF role",
            hint="use 1-64 lower-case letters, digits, '_' or '-'",
        )
    return value


def group_role(zone: str, group: str) -> str:
    return f"{check_name('zone', zone)}.{check_name('group', group)}"


def index_role(zone: str, group: str) -> str:
    return f"{group_role(zone, group)}.index"


def group_of_role(role: str) -> tuple[str, str]:
    """``(zone, group)`` of either of a group's roles."""
    zone, group = role.removesuffix(".index").split(".", 1)
    return zone, group


def group_prefix(zone: str, group: str) -> str:
    return f"{zone}/{group}/"


def index_path(zone: str, group: str) -> str:
    return f"{group_prefix(zone, group)}index.json"


def model_path(zone: str, group: str, model: str, version: int) -> str:
    return f"{group_prefix(zone, group)}{model}.v{version}.tar"


def keys_path(zone: str, group: str, agent_id: int) -> str:
    """Flat under the group's folder: a TUF path pattern's ``*`` does not cross ``/``."""
    return f"{group_prefix(zone, group)}agent-{agent_id}.keys.json"


class VariantSpec(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: int
    weight: float


class ExperimentSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A running A/B experiment as agents see it: enough to assign cohorts offline."""

    model: str
    salt: str
    variants: list[VariantSpec]
    metric: str = "rate"
    """How outcomes are judged, so agents refuse impossible ones: ``rate`` takes 0 or 1,
    ``mean`` a finite number within ``outcome_min`` … ``outcome_max``."""
    outcome_min: float | None = None
    """A ``mean`` experiment's smallest and …"""
    outcome_max: float | None = None
    """… largest outcome; ``None``: the agent's own bound (±1e9)."""


class KeyGrant(msgspec.Struct, frozen=True, kw_only=True):
    """An inference credential as agents check it: the SHA-256 of a key's secret (never
    the secret), or of a client certificate's DER (mutual TLS)."""

    sha256: str
    certificate: bool = False
    """``sha256`` is a client certificate's: it is matched against the certificate a client
    presents in the TLS handshake, never against a bearer key."""
    models: list[str] = []
    """Models it may call; empty: every model of the group."""
    expires_at: float
    """Unix time after which agents refuse it, hub or no hub."""


class GroupIndex(msgspec.Struct, frozen=True, kw_only=True):
    """The ``index.json`` target: which model versions one group runs."""

    zone: str
    group: str
    models: dict[str, int] = {}
    """Model → the version answering requests that name no version (production)."""
    experiments: dict[str, ExperimentSpec] = {}
    """Experiment name → its variants; their versions are installed beside the default."""
    pins: dict[str, dict[str, int]] = {}
    """Agent id (text) → model → version: the agents a rollout has reached so far."""
    keys: dict[str, KeyGrant] = {}
    """Key id → the inference key client applications present to this group's agents
    (signed like the rest, so it reaches offline agents too; revoked keys are absent)."""
    standby: dict[str, dict[str, int]] = {}
    """Agent id (text) → model → version loaded beside the default without answering:
    a blue-green rollout's new version before the switch, and its old one after."""

    def defaults_for(self, agent_id: int) -> dict[str, int]:
        """The version of each model that answers this agent's requests naming none."""
        return {**self.models, **self.pins.get(str(agent_id), {})}

    def wanted(self, agent_id: int = 0) -> set[tuple[str, int]]:
        """Every (model, version) this agent should have loaded."""
        versions = set(self.defaults_for(agent_id).items())
        versions.update(self.standby.get(str(agent_id), {}).items())
        for experiment in self.experiments.values():
            versions.update((experiment.model, v.version) for v in experiment.variants)
        return versions


class Encryption(msgspec.Struct, frozen=True, kw_only=True):
    """A bundle target is encrypted; its data key is in each agent's keys target."""

    alg: str = ENCRYPTION_ALG
    plain_length: int


class AgentKeys(msgspec.Struct, frozen=True, kw_only=True):
    """The ``agent-<id>.keys.json`` target: data keys wrapped to one agent's X25519 key."""

    agent_id: int
    keys: dict[str, dict[str, str]] = {}
    """Model target path → its data key, wrapped for this agent."""


class ModelTarget(msgspec.Struct, frozen=True, kw_only=True):
    """A bundle target's ``custom`` field."""

    model: str
    version: int
    encryption: Encryption | None = None


def wrap_context(target_path: str, agent_id: int) -> bytes:
    """Binds a wrapped key to one target and one agent: it cannot be moved to another."""
    return f"{target_path}|agent:{agent_id}".encode()


def seal_aad(model: str, version: int) -> bytes:
    return f"appliance.bundle:{model}/{version}".encode()
