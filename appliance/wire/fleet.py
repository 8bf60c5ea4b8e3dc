"""Wire schemas of the fleet: enrolment, heartbeats, reports and assignments."""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class EnrolmentRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What an agent may say about itself at enrolment; zone and group come from the token."""

    token: str
    name: str
    public_key: str
    runtime: str
    encryption_key: str | None = None
    """X25519 public key (PEM) the hub wraps model keys to; without it, only plain targets."""
    labels: dict[str, str] = {}
    url: str | None = None
    software_version: str | None = None
    tls_csr: str | None = None
    """A certificate signing request (PEM) for the agent's HTTPS; the hub answers with a
    certificate from the site CA when it holds one."""


class InstalledModel(msgspec.Struct, kw_only=True):
    name: str
    version: int
    runtime: str
    state: str = "ready"
    """``ready``: answers requests naming no version; ``standby``: loaded beside it (an
    experiment's variant, or a blue-green rollout's other version)."""


class UpgradeFailure(msgspec.Struct, kw_only=True):
    """An agent's word that upgrading to ``version`` failed and it went back (its host's
    ``appliance upgrade`` rolled it back)."""

    version: str
    reason: str


class Heartbeat(msgspec.Struct, kw_only=True):
    models: list[InstalledModel] = []
    health: Literal["ok", "degraded", "failing"] = "ok"
    detail: str | None = None
    software_version: str | None = None
    """The release the agent runs now (an agent of 0.1.0 did not say: the hub keeps what
    it said at enrolment). Agent upgrades change it; the hub shows and checks it."""
    upgrade_failed: UpgradeFailure | None = None
    """The last upgrade this agent tried and rolled back, if any."""
    upgrading: str | None = None
    """The release its host's upgrader is installing now, not yet judged healthy there (the
    new release runs, and heartbeats, during that check): not yet counted as upgraded."""


ReportKind = Literal["drift", "serving", "ab"]


class AgentReport(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One report from an agent's outbox; ``key`` makes delivery idempotent."""

    key: str
    kind: ReportKind
    body: dict[str, Any]


class NewInferenceKey(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An inference key for client applications of one agent group."""

    name: str
    zone: str
    group: str = "default"
    models: list[str] = []
    """Models it may call (empty: every model the group serves)."""
    days: int = 365
    csr: str | None = None
    """A certificate signing request (PEM, ECDSA): the credential is then a client
    certificate from the site CA, presented in the TLS handshake, instead of a bearer key
    (the private key never leaves the application's box)."""


class InferenceKeyInfo(msgspec.Struct, kw_only=True):
    id: int
    key_id: str
    name: str
    zone: str
    group: str
    models: list[str]
    created_by: str
    created_at: str
    expires_at: str
    revoked_at: str | None = None
    key: str | None = None
    """The whole key, in the answer that creates it only: the hub keeps its hash."""
    certificate: str | None = None
    """The client certificate (PEM), when the credential is one."""


class AbSummary(msgspec.Struct, kw_only=True):
    """The body of an ``ab`` report: one variant's outcomes over one interval."""

    experiment: str
    variant: str
    count: int
    total: float
    total_sq: float = 0.0


class RefusedReport(msgspec.Struct, kw_only=True):
    """A report the hub will never take, and why: the agent sets it aside (dead letters)
    instead of sending it again and again ahead of every later report."""

    key: str
    reason: str


class ReportsAccepted(msgspec.Struct, kw_only=True):
    accepted: list[str]
    """Keys the hub now holds (new or already known): the agent may forget them."""
    refused: list[RefusedReport] = []
    """Reports the hub refused, item by item; the rest of the batch is held as usual."""


class AgentInfo(msgspec.Struct, kw_only=True):
    id: int
    name: str
    zone: str
    group: str
    runtime: str
    labels: dict[str, str]
    url: str | None
    registered_at: str
    last_seen_at: str | None
    health: str
    detail: str | None
    models: list[InstalledModel]
    enrolled_at: str | None = None
    revoked_at: str | None = None
    software_version: str | None = None
    """The release it runs, as its last heartbeat (or its enrolment) said."""
    tls_certificate: str | None = None
    """In the answer to enrolment only: the agent's HTTPS certificate from the site CA."""


class AgentReleaseInfo(msgspec.Struct, kw_only=True):
    """A signed agent release the hub holds, for agents to upgrade to."""

    version: str
    name: str
    """The archive's folder, ``appliance-agent-<version>``."""
    sums_sha256: str
    archive_sha256: str
    size: int
    key_id: str
    uploaded_by: str
    uploaded_at: str


class NewAgentUpgrade(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Take one agent group to an agent release the hub holds, ring by ring."""

    version: str
    zone: str
    group: str = "default"
    rings: list[float] = msgspec.field(default_factory=lambda: [0.05, 0.25, 1.0])
    """Cumulative shares of the group's agents (by id), the last one 1.0."""
    soak_s: float = 600.0
    """How long a ring runs the new release, every agent of it upgraded and healthy, before
    the next ring starts."""


class AgentUpgradeInfo(msgspec.Struct, kw_only=True):
    id: int
    version: str
    zone: str
    group: str
    rings: list[float]
    ring: int
    """1-based: the ring it is in now."""
    state: str
    """running, completed, halted (an agent failed), aborted."""
    soak_s: float
    ring_started_at: str
    agents_reached: list[int] = []
    """Agents asked to run the release now."""
    agents_upgraded: list[int] = []
    """Those of them that say they run it."""
    failed: list[dict[str, Any]] = []
    """Agents whose upgrade failed (they went back): agent id, name, reason."""
    steps: list[dict[str, Any]] = []
    created_by: str = ""
    created_at: str = ""


class Assignment(msgspec.Struct, kw_only=True):
    """A model version this agent should run, and where to fetch its bundle."""

    name: str
    version: int
    bundle_sha256: str
    bundle_length: int
    bundle_path: str


class RefusedAssignment(msgspec.Struct, kw_only=True):
    """A production model this agent may not run, and the residency rule that says so."""

    name: str
    version: int
    rule: str
    reason: str


class SoftwareTarget(msgspec.Struct, kw_only=True):
    """The agent release the hub wants this agent to run (an agent upgrade reached it)."""

    version: str
    archive_sha256: str
    sums_sha256: str
    upgrade_id: int


class AgentAssignments(msgspec.Struct, kw_only=True):
    models: list[Assignment]
    refused: list[RefusedAssignment] = []
    software: SoftwareTarget | None = None
    """Set while an agent upgrade wants this agent on another release."""
