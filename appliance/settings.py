"""Typed settings, one small frozen dataclass per concern.

Values come from, in order of precedence: command-line flags (passed as
``overrides``), then environment variables with the ``APPLIANCE_`` prefix,
then the defaults below. Settings are read once, at start-up, by the command
line; library code (a sync client, a runtime) takes these objects and never
reads the environment itself.

=============================  ==========================================
variable                       meaning
=============================  ==========================================
``APPLIANCE_DATA_DIR``         where keys, records and artifacts live
``APPLIANCE_HOST``             address a service binds (default loopback)
``APPLIANCE_HUB_PORT``         hub HTTP port (default 8700)
``APPLIANCE_DATABASE_URL``     SQLAlchemy URL of the hub's records;
                               default SQLite under the data directory
``APPLIANCE_MAX_UPLOAD_MB``    largest model upload the hub accepts
``APPLIANCE_HUB_URL``          where agents find the hub
``APPLIANCE_ZONE``             residency zone (the hub's own, or an agent's check)
``APPLIANCE_RESIDENCY_POLICY`` hub: TOML file of zones and allowed flows
``APPLIANCE_BACKUP_DIR``       hub: where the backup before a schema migration goes
``APPLIANCE_RELEASE_KEY``      hub: the pinned release public key (PEM) agent releases must match
``APPLIANCE_APPROVALS_REQUIRED`` hub: distinct approvers for production (1 or 2)
``APPLIANCE_TLS_CERT``/``_KEY`` hub: serve HTTPS with this certificate and key
``APPLIANCE_HUB_CA``           agent/CLI: the site CA that the hub's certificate must chain to
``APPLIANCE_ENROL_TOKEN``      agent: one-time enrolment token for the first start
``APPLIANCE_FEATURES_MATERIALIZE_MINUTES``  hub: online-store refresh interval (0 = off)
``APPLIANCE_ENCRYPT_MODELS``   hub: encrypt model targets per agent (default true)
``APPLIANCE_OFFLINE_DAYS``     hub: validity of exported offline update bundles, in days
``APPLIANCE_OFFLINE_MAX_DAYS`` hub: the longest validity an export may ask for (default 30)
``APPLIANCE_MAX_SOAK_S``       hub: the longest soak a rollout ring may ask for
``APPLIANCE_AGENT_INSTALL_GRACE_S`` hub: how long past its soak an agent upgrade's ring may install
``APPLIANCE_MAX_EXPERIMENT_DAYS`` hub: the longest an A/B experiment runs (then it stops)
``APPLIANCE_TRAINING_LEASE_S`` hub: a training job's lease without a worker heartbeat
``APPLIANCE_SIGN_IN_PER_MINUTE`` hub: sign-ins, refreshes and enrolments per client per minute
``APPLIANCE_TRUSTED_PROXIES``  hub: comma-separated addresses whose X-Forwarded-For is believed
``APPLIANCE_AGENT_STALE_S``    hub: an agent silent this long is shown stale (default 900)
``APPLIANCE_SITE_CA``          hub: folder of the site CA (ca.crt, ca.key) that signs agents' HTTPS
``APPLIANCE_PLAIN_HTTP``       agent: serve plain HTTP without a certificate (closed labs only)
``APPLIANCE_AGENT_NAME``       agent name (default: the host name)
``APPLIANCE_AGENT_PORT``       agent HTTP port (default 8701)
``APPLIANCE_AGENT_URL``        agent: the URL the hub and console reach it at (default: host name)
``APPLIANCE_UPGRADE_COMMAND``  agent: what asks the host for an upgrade without systemd's path unit
``APPLIANCE_RUNTIME``          ``auto``, ``onnxruntime`` or ``openvino``
``APPLIANCE_SYNC_INTERVAL``    seconds between polls of the hub
``APPLIANCE_TRUSTED_ROOT``     agent: TUF root metadata to pin at enrolment
``APPLIANCE_INFERENCE_THREADS``  intra-op threads per model (0 = runtime decides)
``APPLIANCE_MAX_REQUEST_MB``   largest inference request body
``APPLIANCE_ALLOW_NON_FINITE`` agent: models (comma-separated) whose inputs may hold NaN/inf
``APPLIANCE_BATCHING``         agent: dynamic batching, ``name=max_batch:max_delay_ms``,…
``APPLIANCE_OPEN_DATA_PLANE``  agent: serve models without inference keys (closed labs only)
``APPLIANCE_ACCESS_LOG``       agent: one log line per request (default true)
``APPLIANCE_SERVING_PROCESSES`` agent: processes answering its port (``--workers``, default 1)
``APPLIANCE_INFERENCE_INLINE_MS`` agent: requests cheaper than this run on the event loop
``APPLIANCE_DRIFT_BACKEND``    agent: ``scipy`` (default) or ``alibi`` (licence needed)
=============================  ==========================================
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar, cast, get_args

from appliance.errors import ConfigError

PREFIX = "APPLIANCE_"
RuntimeChoice = Literal["auto", "onnxruntime", "openvino"]
RUNTIME_CHOICES: tuple[str, ...] = get_args(RuntimeChoice)
DriftBackend = Literal["scipy", "alibi"]
DRIFT_BACKENDS: tuple[str, ...] = get_args(DriftBackend)
_CHOICES = {"RuntimeChoice": RUNTIME_CHOICES, "DriftBackend": DRIFT_BACKENDS}

T = TypeVar("T")


def default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "appliance"


def env_name(variable: str) -> dict[str, str]:
    """Field metadata: read this field from ``APPLIANCE_<variable>``, the name it had before it
    moved into its concern, so installed env files keep working."""
    return {"env": variable}


@dataclass(frozen=True)
class HubTlsSettings:
    """The hub's HTTPS (``APPLIANCE_TLS_CERT``, ``_TLS_KEY``, ``_CLIENT_CA``,
    ``_REQUIRE_CLIENT_CERT``)."""

    cert: Path | None = None
    """Serve HTTPS with this certificate (from the site CA) …"""
    key: Path | None = None
    """… and this key."""
    client_ca: Path | None = field(default=None, metadata=env_name("CLIENT_CA"))
    """Check client certificates against this CA (mutual TLS) …"""
    require_client_cert: bool = field(default=False, metadata=env_name("REQUIRE_CLIENT_CERT"))
    """… and refuse clients without one (then the console needs a certificate too)."""


@dataclass(frozen=True)
class ReleaseSettings:
    """What putting a version in front of customers takes and how long it may take."""

    approvals_required: int = field(default=1, metadata=env_name("APPROVALS_REQUIRED"))
    """Distinct approvers needed to put a version in production (the author never alone)."""
    max_soak_s: float = field(default=7 * 24 * 3600.0, metadata=env_name("MAX_SOAK_S"))
    """The longest soak a rollout ring may have: a staging version serves no longer than this
    per ring without reaching production."""
    rollout_check_s: float = field(default=10.0, metadata=env_name("ROLLOUT_CHECK_S"))
    """How often rollout rings that have soaked are judged against their gates."""
    max_experiment_days: float = field(default=90.0, metadata=env_name("MAX_EXPERIMENT_DAYS"))
    """The longest an A/B experiment runs: its variants then leave agents and it stops."""
    agent_install_grace_s: float = field(default=900.0, metadata=env_name("AGENT_INSTALL_GRACE_S"))
    """How long past its soak an agent upgrade's ring may take to come back on the new
    release before the upgrade halts (an agent's venv is built from ~80 wheels on the box
    itself: slow boxes want more)."""


@dataclass(frozen=True)
class UpdateSettings:
    """What the hub publishes to agents (``APPLIANCE_ENCRYPT_MODELS``, ``_OFFLINE_DAYS``,
    ``_OFFLINE_MAX_DAYS``)."""

    encrypt: bool = field(default=True, metadata=env_name("ENCRYPT_MODELS"))
    """Encrypt model targets to each agent's own key (AES-256-GCM, X25519-wrapped), so a
    copied file opens nowhere else."""
    offline_days: int = field(default=30, metadata=env_name("OFFLINE_DAYS"))
    """How long an exported offline update bundle stays valid by default …"""
    offline_max_days: int = field(default=30, metadata=env_name("OFFLINE_MAX_DAYS"))
    """… and the longest an export may ask for: a longer validity would defeat the freeze
    protection of timestamps."""


@dataclass(frozen=True)
class FleetSettings:
    """How the hub enrols agents and judges what they report."""

    site_ca: Path | None = field(default=None, metadata=env_name("SITE_CA"))
    """The site CA's folder (``ca.crt``, ``ca.key``): enrolling agents get an HTTPS
    certificate from it. Default: ``data_dir/ca`` when it is there."""
    stale_s: float = field(default=900.0, metadata=env_name("AGENT_STALE_S"))
    """An agent with no heartbeat for this long is shown ``stale``, whatever it last said."""
    refused_reports_window_s: float = field(
        default=3600.0, metadata=env_name("REFUSED_REPORTS_WINDOW_S")
    )
    """An agent some of whose reports the hub refused is shown ``degraded`` for this long
    after the last refusal, whatever it says (the refused readings are lost to drift,
    serving and A/B figures)."""
    drift_alert_windows: int = field(default=3, metadata=env_name("DRIFT_ALERT_WINDOWS"))
    """Drifted windows in a row (one agent, model, version) that open a drift alert."""


@dataclass(frozen=True)
class AccessSettings:
    """Who may knock how often, and whose word on a client's address is believed."""

    sign_in_per_minute: int = field(default=30, metadata=env_name("SIGN_IN_PER_MINUTE"))
    """Sign-ins, token refreshes and enrolments one client address may make per minute."""
    trusted_proxies: tuple[str, ...] = field(default=(), metadata=env_name("TRUSTED_PROXIES"))
    """Reverse proxies whose ``X-Forwarded-For`` names the client; by default none is
    believed, so a client cannot choose the address that rate limits and the audit see."""


@dataclass(frozen=True)
class ScheduleSettings:
    """The hub's periodic work."""

    audit_checkpoint_minutes: float = field(
        default=5.0, metadata=env_name("AUDIT_CHECKPOINT_MINUTES")
    )
    """How often the head of the audit chain is signed (0: never, for tests)."""
    features_materialize_minutes: float = field(
        default=10.0, metadata=env_name("FEATURES_MATERIALIZE_MINUTES")
    )
    """How often views already in the online store are refreshed; 0 turns it off."""
    training_lease_s: float = field(default=60.0, metadata=env_name("TRAINING_LEASE_S"))
    """How long a worker holds a training job without a heartbeat before it is requeued."""


@dataclass(frozen=True)
class HubSettings:
    """How the hub runs: where it keeps things and where it listens, then one object per
    concern. A concern's fields keep the variables they had before they moved."""

    data_dir: Path = field(default_factory=lambda: default_data_dir() / "hub")
    """Keys, the SQLite file (by default) and the artifact store."""
    host: str = "127.0.0.1"
    """Address to bind; loopback unless told otherwise."""
    hub_port: int = 8700
    """HTTP port of the hub."""
    database_url: str = ""
    """SQLAlchemy URL; empty means SQLite at ``data_dir/hub.db``."""
    max_upload_mb: int = 512
    """Largest model upload accepted, in MiB."""
    zone: str = "ae-dxb"
    """The hub's own zone: the only one known when there is no residency policy file."""
    residency_policy: Path | None = None
    """TOML policy of zones and flows; default ``data_dir/residency.toml`` if present."""
    backup_dir: Path | None = None
    """Where the backup taken before a schema migration goes; default: beside the data
    directory, ``<data_dir>-backups`` (never inside it: a backup of itself)."""
    release_key: Path | None = None
    """The release public key (PEM) the site pinned: agent releases uploaded to the hub
    must be signed by it (none: the hub takes no agent release)."""
    tls: HubTlsSettings = field(default_factory=lambda: HubTlsSettings())
    releases: ReleaseSettings = field(default_factory=lambda: ReleaseSettings())
    updates: UpdateSettings = field(default_factory=lambda: UpdateSettings())
    fleet: FleetSettings = field(default_factory=lambda: FleetSettings())
    access: AccessSettings = field(default_factory=lambda: AccessSettings())
    schedule: ScheduleSettings = field(default_factory=lambda: ScheduleSettings())

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'hub.db'}"

    @property
    def resolved_backup_dir(self) -> Path:
        return self.backup_dir or self.data_dir.with_name(f"{self.data_dir.name}-backups")


@dataclass(frozen=True)
class InferenceSettings:
    """How an agent runs requests; each field is ``APPLIANCE_INFERENCE_<FIELD>``."""

    threads: int = 1
    """Intra-op threads per model; 1 suits small boxes and batch-1 latency."""
    workers: int = 2
    """Requests one model runs at once, off the event loop (0: on it, as before: lowest
    latency for a tiny model, but health probes wait behind inference) …"""
    queue: int = 32
    """… and keeps waiting beyond those; more get 429 with ``Retry-After``."""
    timeout_s: float = 30.0
    """A request not answered by then gets 504 (its work finishes in the background)."""
    inline_ms: float = 0.5
    """A model whose requests take less CPU than this (a moving average) answers requests
    of its usual size on the event loop, where a thread hand-off would cost more than the
    model (:mod:`agent.lanes`); probes wait at most about this long per request ahead."""


@dataclass(frozen=True)
class DriftSettings:
    """An agent's drift tests; each field is ``APPLIANCE_DRIFT_<FIELD>``."""

    window_rows: int = 1000
    """Recent inputs kept per model version for drift tests (in memory, never sent)."""
    every_requests: int = 1000
    """Test for drift after this many new rows …"""
    interval_s: float = 300.0
    """… or this long after the last test."""
    check_s: float = 5.0
    """How often the agent looks for windows due a test (cheap when none is)."""
    p_value: float = 0.05
    """Significance of a drift test (per-feature tests corrected for multiplicity)."""
    backend: DriftBackend = "scipy"
    """What runs the tests: ``scipy`` (scipy.stats, BSD) or ``alibi`` (alibi-detect, Business
    Source License 1.1: production use needs a licence from Seldon); same verdicts."""


@dataclass(frozen=True)
class HubLinkSettings:
    """How an agent reaches the hub, proves who it is and knows it is talking to its hub."""

    enrol_token: str | None = field(default=None, metadata=env_name("ENROL_TOKEN"))
    """One-time token from an admin, used on first start if the agent is not enrolled."""
    hub_ca: Path | None = field(default=None, metadata=env_name("HUB_CA"))
    """The site CA certificate that the hub's TLS certificate must chain to."""
    client_cert: Path | None = field(default=None, metadata=env_name("CLIENT_CERT"))
    """This agent's certificate from the site CA, for hubs that require mutual TLS …"""
    client_key: Path | None = field(default=None, metadata=env_name("CLIENT_KEY"))
    """… and its private key."""
    trusted_root: Path | None = field(default=None, metadata=env_name("TRUSTED_ROOT"))
    """TUF root metadata to pin at enrolment; default: the hub's, fetched over the pinned CA."""
    sync_interval: float = field(default=10.0, metadata=env_name("SYNC_INTERVAL"))
    """Seconds between polls of the hub for the models this agent should run."""
    outbox_max_reports: int = field(default=10_000, metadata=env_name("OUTBOX_MAX_REPORTS"))
    """Reports kept for the hub while it is unreachable; the oldest go first when full."""


@dataclass(frozen=True)
class ServingSettings:
    """Who may ask an agent for predictions, and what it accepts and reports."""

    processes: int = 1
    """Processes that answer HTTP on the agent's port (``--workers``,
    ``APPLIANCE_SERVING_PROCESSES``): the first also syncs, tests drift, reports and serves
    gRPC; the others only serve what it installed (:mod:`agent.follower`). More than one pays
    off for small models, whose requests spend their time in HTTP rather than in the model;
    each process loads every model."""
    report_s: float = 60.0
    """How often request counts, errors and latency (p95) per model version go to the hub
    (``APPLIANCE_SERVING_REPORT_S``)."""
    max_request_mb: int = field(default=16, metadata=env_name("MAX_REQUEST_MB"))
    """Largest inference request body, in MiB (larger ones get 413)."""
    plain_http: bool = field(default=False, metadata=env_name("PLAIN_HTTP"))
    """Serve plain HTTP when enrolment brought no certificate (a hub without the site CA):
    for a closed lab only. Otherwise an agent without a certificate refuses to start."""
    open_data_plane: bool = field(default=False, metadata=env_name("OPEN_DATA_PLANE"))
    """Serve models to anyone who reaches the agent, without an inference key: for a closed
    lab network only (the agent says so in its log)."""
    batching: tuple[str, ...] = field(default=(), metadata=env_name("BATCHING"))
    """Dynamic batching per model, ``name=max_batch:max_delay_ms`` (``agent.batching``);
    off for every model not named."""
    allow_non_finite: tuple[str, ...] = field(default=(), metadata=env_name("ALLOW_NON_FINITE"))
    """Models whose floating inputs may hold NaN or infinity (a model that reads NaN as
    'missing'); every other model's requests with them are refused with 422."""
    access_log: bool = field(default=True, metadata=env_name("ACCESS_LOG"))
    """One log line per HTTP request (``agent.access``: method, path, status, time; in JSON
    logs its request id, caller, model and version). It costs about 20 µs (text) to 30 µs
    (JSON) of a request's time on a 2-core box; a site serving tiny models at full speed
    may turn it off (``APPLIANCE_ACCESS_LOG=false``); Triton's default is off, KServe's on."""


@dataclass(frozen=True)
class GrpcSettings:
    """The Open Inference Protocol over gRPC (``APPLIANCE_GRPC_<FIELD>``)."""

    port: int = 8702
    """Same TLS and inference keys as HTTP; 0 turns gRPC off."""
    client_certs: bool = False
    """Make every gRPC client present a client certificate from the site CA (mutual TLS).
    gRPC's server cannot ask for one optionally as HTTPS does: off, gRPC clients use
    inference keys; on, certificates the hub issued (and keys as well, over mutual TLS)."""


@dataclass(frozen=True)
class ProbationSettings:
    """How a newly installed version earns its place (``APPLIANCE_PROBATION_<FIELD>``)."""

    requests: int = 20
    """A new model version is kept once this many of its first requests succeed …"""
    seconds: float = 30.0
    """… or this long has passed without ``2`` failures; otherwise it is rolled back."""


@dataclass(frozen=True)
class AgentSettings:
    """How an agent runs: who it is, where it keeps things and listens, then one object
    per concern. A concern's fields keep the variables they had before they moved."""

    hub_url: str
    """Base URL of the hub, e.g. ``https://hub.example:8700``."""
    zone: str = ""
    """Residency zone: set by the enrolment token; if given here it must match."""
    data_dir: Path = field(default_factory=lambda: default_data_dir() / "agent")
    """Installed bundles and the agent's own state."""
    agent_name: str = field(default_factory=socket.gethostname)
    """Name the agent registers under; unique per hub."""
    host: str = "127.0.0.1"
    agent_port: int = 8701
    agent_url: str = ""
    """The URL the hub and the console reach this agent at, sent at enrolment and named in
    its certificate (``APPLIANCE_AGENT_URL``, ``--url``). Default: its scheme, ``host`` and
    port, with the machine's name (FQDN) for a wildcard ``host`` (``0.0.0.0``, ``::``)."""
    runtime: RuntimeChoice = "auto"
    """``auto`` picks OpenVINO when IR is present on an Intel CPU, else ONNX Runtime."""
    labels: tuple[str, ...] = ()
    """Free-form ``key=value`` labels reported to the hub."""
    upgrade_command: str = ""
    """Run (``sh -c``, in a session of its own) when the agent asks its host for an upgrade
    the hub wants, on hosts where systemd's ``appliance-agent-upgrade.path`` does not
    watch for the request; ``APPLIANCE_UPGRADE_REQUEST`` names the request file."""
    link: HubLinkSettings = field(default_factory=lambda: HubLinkSettings())
    serving: ServingSettings = field(default_factory=lambda: ServingSettings())
    grpc: GrpcSettings = field(default_factory=lambda: GrpcSettings())
    probation: ProbationSettings = field(default_factory=lambda: ProbationSettings())
    inference: InferenceSettings = field(default_factory=lambda: InferenceSettings())
    """How requests run (``APPLIANCE_INFERENCE_*``)."""
    drift: DriftSettings = field(default_factory=lambda: DriftSettings())
    """Drift tests (``APPLIANCE_DRIFT_*``)."""


def _convert(variable: str, raw: str, target: Any) -> Any:
    try:
        if target in (bool, "bool"):
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError("must be true or false")
            return raw.lower() in ("1", "true", "yes")
        if target in (int, "int"):
            return int(raw)
        if target in (float, "float"):
            return float(raw)
        if target in (Path, "Path", "Path | None"):
            return Path(raw).expanduser()
        if target in ("tuple[str, ...]",):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if target in _CHOICES:
            if raw not in _CHOICES[target]:
                raise ValueError(f"must be one of {', '.join(_CHOICES[target])}")
            return raw
    except ValueError as exc:
        raise ConfigError(f"{variable}={raw!r} is invalid: {exc}") from exc
    return raw


def load(
    cls: Callable[..., T],
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> T:
    """Build ``cls`` from flags (``overrides``), then ``APPLIANCE_*`` variables, then defaults.

    ``None`` in ``overrides`` means "flag not given"; a concern's flags are a mapping under
    its name (``{"tls": {"cert": path}}``).
    """
    env = os.environ if environ is None else environ
    return _load(cls, overrides or {}, env, "")


def variable(f: Any, at: str = "") -> str:
    """The environment variable a settings field is read from."""
    return PREFIX + str(f.metadata.get("env", at + f.name)).upper()


def _load(
    cls: Callable[..., T], overrides: Mapping[str, Any], env: Mapping[str, str], at: str
) -> T:
    """``cls``'s fields from ``overrides`` and ``APPLIANCE_<at><FIELD>`` (or the field's own
    variable); a field that is itself one of these setting objects (a concern, as ``drift``)
    is read the same way under ``<at><field>_``."""
    values: dict[str, Any] = {}
    for f in fields(cast(Any, cls)):
        given = overrides.get(f.name)
        concern = _CONCERNS.get(str(f.type))
        if concern is not None:
            values[f.name] = _load(concern, given or {}, env, f"{at}{f.name}_")
            continue
        if given is not None:
            values[f.name] = given
            continue
        name = variable(f, at)
        raw = env.get(name)
        if raw is not None and raw != "":
            values[f.name] = _convert(name, raw, f.type)
    try:
        return cls(**values)
    except TypeError as exc:
        missing = [f for f in fields(cast(Any, cls)) if f.name not in values and _required(f)]
        raise ConfigError(
            f"missing setting(s): {', '.join(f.name for f in missing) or exc}",
            hint="pass the flag or set " + ", ".join(variable(f, at) for f in missing),
        ) from exc


_CONCERNS: dict[str, Callable[..., Any]] = {
    cls.__name__: cls
    for cls in (
        HubTlsSettings,
        ReleaseSettings,
        UpdateSettings,
        FleetSettings,
        AccessSettings,
        ScheduleSettings,
        HubLinkSettings,
        ServingSettings,
        GrpcSettings,
        ProbationSettings,
        DriftSettings,
        InferenceSettings,
    )
}
"""Setting objects nested in others, by the name their fields are annotated with."""


def _required(f: Any) -> bool:
    return bool(f.default is MISSING and f.default_factory is MISSING)
