"""``appliance doctor``: is this host fit to run a hub, an agent or a training worker?

Each check is a small function that looks at the real host (imports, the data
directory, the disk, the clock, the hub over HTTP, the GPU, certificates) and
returns a :class:`CheckResult`: ``ok``, ``warn`` (works, but will bite later),
``fail`` (will not work) or ``skip`` (nothing to look at), with what is wrong
and how to fix it. Nothing here changes the host, apart from one temporary
file that proves the data directory is writable.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import ssl
import stat
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Final, Literal, get_args

import httpx
from cryptography import x509

from appliance import __version__
from appliance.clock import utcnow
from appliance.errors import ConfigError
from appliance.security.tls import client_ssl_context

Status = Literal["ok", "warn", "fail", "skip"]
Role = Literal["hub", "agent", "worker"]
ROLES: Final[tuple[str, ...]] = get_args(Role)

PYTHON: Final = (3, 11)
MIB: Final = 2**20
FAIL_FREE_BYTES: Final = 200 * MIB
WARN_FREE_BYTES: Final = 2 * 1024 * MIB
CLOCK_FLOOR: Final = datetime(2025, 1, 1, tzinfo=UTC)
"""No appliance was built before this: a clock behind it is wrong, and TLS and tokens fail."""
MAX_SKEW_S: Final = 30.0
CERT_WARN_DAYS: Final = 30
HTTP_TIMEOUT_S: Final = 5.0
_NTP_HINT: Final = "turn on time sync on both hosts (timedatectl set-ntp true, or chrony)"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str
    hint: str = ""
    """How to fix it; empty when there is nothing to do."""


@dataclass(frozen=True)
class Requirement:
    """A module a role imports; ``needed`` ones fail when missing, the others warn."""

    module: str
    needed: bool = True
    why: str = ""


REQUIREMENTS: Final[dict[str, tuple[Requirement, ...]]] = {
    "hub": (
        Requirement("litestar"),
        Requirement("uvicorn"),
        Requirement("sqlmodel"),
        Requirement("duckdb"),
        Requirement("pyarrow"),
        Requirement("torch"),
        Requirement("onnxruntime"),
        Requirement("openvino", needed=False, why="bundles then carry ONNX only"),
    ),
    "agent": (
        Requirement("litestar"),
        Requirement("uvicorn"),
        Requirement("onnxruntime"),
        Requirement("openvino", needed=False, why="ONNX Runtime serves every model without it"),
        Requirement(
            "grpc",
            needed=False,
            why="no gRPC front: the agent refuses to start unless APPLIANCE_GRPC_PORT=0",
        ),
    ),
    "worker": (
        Requirement("torch"),
        Requirement("pynvml", needed=False, why="no GPU readings on heartbeats"),
    ),
}
_EXTRA: Final = {"hub": "hub", "agent": "agent", "worker": "hub"}


@dataclass(frozen=True)
class DoctorOptions:
    role: Role = "hub"
    data_dir: Path | None = None
    """The role's data directory; None for a worker, which keeps none."""
    hub_url: str | None = None
    hub_ca: Path | None = None
    session_file: Path | None = None
    """A worker's signed-in session (``appliance login``), checked for its mode."""


def run_checks(
    options: DoctorOptions, *, now: Callable[[], datetime] = utcnow
) -> list[CheckResult]:
    """Every check for the role, in the order an operator would fix them."""
    results = [check_python(), check_appliance_version()]
    results += [check_import(req, options.role) for req in REQUIREMENTS[options.role]]
    if options.data_dir is not None:
        results += [
            check_data_dir(options.data_dir),
            check_key_permissions(options.data_dir),
            check_disk(options.data_dir),
        ]
    if options.session_file is not None:
        results.append(check_session_file(options.session_file))
    results.append(check_clock(now()))
    results += check_hub(options.hub_url, options.hub_ca, options.role, now=now)
    results.append(check_gpu(options.role))
    if options.data_dir is not None:
        results += check_certificates(options.data_dir, now())
    return results


def worst(results: Sequence[CheckResult]) -> Status:
    for status in ("fail", "warn"):
        if any(r.status == status for r in results):
            return status
    return "ok"


# -- software -----------------------------------------------------------------------------


def check_python(version: Sequence[int] | None = None) -> CheckResult:
    version = sys.version_info[:3] if version is None else version
    found = ".".join(str(part) for part in version[:3])
    if tuple(version[:2]) == PYTHON:
        return CheckResult("python", "ok", f"Python {found}")
    return CheckResult(
        "python",
        "fail",
        f"Python {found}; the appliance needs {PYTHON[0]}.{PYTHON[1]}",
        "install Python 3.11 and recreate the virtualenv (python3.11 -m venv .venv)",
    )


def check_appliance_version() -> CheckResult:
    """The code's version against the installed metadata: a mismatch is a stale install."""
    try:
        installed = importlib.metadata.version("appliance")
    except importlib.metadata.PackageNotFoundError:
        return CheckResult(
            "appliance",
            "warn",
            f"{__version__}, run from source (not installed)",
            "pip install -e .",
        )
    if installed != __version__:
        return CheckResult(
            "appliance",
            "warn",
            f"code is {__version__} but the installed package says {installed}",
            "reinstall: pip install -e .",
        )
    return CheckResult("appliance", "ok", f"appliance {__version__}")


def check_import(requirement: Requirement, role: str) -> CheckResult:
    """Import for real: a package that is present but whose libraries are missing fails too."""
    name = f"import {requirement.module}"
    try:
        module = importlib.import_module(requirement.module)
    except Exception as exc:  # ImportError, or OSError from a missing shared library
        detail = f"{type(exc).__name__}: {exc}"
        if requirement.why:
            detail += f" ({requirement.why})"
        return CheckResult(
            name,
            "fail" if requirement.needed else "warn",
            detail,
            f"pip install -e '.[{_EXTRA[role]}]'",
        )
    version = getattr(module, "__version__", None)
    if not isinstance(version, str):  # litestar's is a named tuple, pynvml has none
        version = _distribution_version(requirement.module)
    return CheckResult(name, "ok", f"{requirement.module} {version or '(version unknown)'}")


def _distribution_version(module: str) -> str | None:
    for distribution in importlib.metadata.packages_distributions().get(module, []):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


# -- the data directory -------------------------------------------------------------------


def check_data_dir(data_dir: Path) -> CheckResult:
    """It exists (or can be made) and a file can be written in it, as the service will."""
    name = "data directory"
    if not data_dir.exists():
        parent = _nearest_existing(data_dir)
        if os.access(parent, os.W_OK | os.X_OK):
            return CheckResult(
                name,
                "warn",
                f"{data_dir} does not exist yet",
                "it is created on first start; pass --data-dir if it lives elsewhere",
            )
        return CheckResult(
            name,
            "fail",
            f"{data_dir} does not exist and {parent} is not writable",
            f"create it for the service's user: install -d -m 0755 {data_dir}",
        )
    if not data_dir.is_dir():
        return CheckResult(name, "fail", f"{data_dir} is not a folder", "pass the right --data-dir")
    try:
        with tempfile.TemporaryFile(dir=data_dir, prefix=".doctor-"):
            pass
    except OSError as exc:
        return CheckResult(
            name,
            "fail",
            f"{data_dir} is not writable: {exc.strerror or exc}",
            f"chown -R <service user> {data_dir}",
        )
    return CheckResult(name, "ok", f"{data_dir} exists and is writable")


def check_key_permissions(data_dir: Path) -> CheckResult:
    """Every private key (``*.key``) readable by its owner only, as the loaders require."""
    name = "key permissions"
    if not data_dir.is_dir():
        return CheckResult(name, "skip", f"no {data_dir} to look in")
    keys = sorted(data_dir.rglob("*.key"))
    loose = [(path, stat.S_IMODE(path.stat().st_mode)) for path in keys]
    loose = [(path, mode) for path, mode in loose if mode & 0o077]
    if not loose:
        return CheckResult(name, "ok", f"{len(keys)} private keys, none readable by others")
    shown = ", ".join(f"{path} ({mode:o})" for path, mode in loose[:3])
    more = f" and {len(loose) - 3} more" if len(loose) > 3 else ""
    return CheckResult(
        name,
        "fail",
        f"readable by others: {shown}{more}",
        "chmod 600 " + " ".join(str(path) for path, _ in loose),
    )


def check_session_file(path: Path) -> CheckResult:
    """A worker's session holds its refresh token: it must exist and be the owner's only."""
    name = "session file"
    if not path.is_file():
        return CheckResult(
            name, "warn", f"not signed in: no {path}", "appliance login --username <worker account>"
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return CheckResult(
            name, "fail", f"{path} is readable by others ({mode:o})", f"chmod 600 {path}"
        )
    return CheckResult(name, "ok", f"{path} (mode {mode:o})")


def disk_status(free_bytes: int) -> Status:
    """``fail`` under 200 MiB (writes start failing), ``warn`` under 2 GiB, else ``ok``."""
    if free_bytes < FAIL_FREE_BYTES:
        return "fail"
    if free_bytes < WARN_FREE_BYTES:
        return "warn"
    return "ok"


def check_disk(data_dir: Path) -> CheckResult:
    where = _nearest_existing(data_dir)
    free = shutil.disk_usage(where).free
    status = disk_status(free)
    detail = f"{free / 2**30:.1f} GiB free at {where}"
    hint = (
        "" if status == "ok" else f"free space on the disk of {where}, or move the data directory"
    )
    return CheckResult("free disk", status, detail, hint)


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


# -- time, the hub --------------------------------------------------------------------------


def check_clock(now: datetime, *, built: datetime | None = None) -> CheckResult:
    """The clock is not before 2025 nor before this software was installed."""
    floor = max(CLOCK_FLOOR, built or _installed_at())
    if now < floor:
        return CheckResult(
            "clock",
            "fail",
            f"system time {now:%Y-%m-%d %H:%M} UTC is before {floor:%Y-%m-%d}",
            "set the time: " + _NTP_HINT + "; certificates and tokens fail until then",
        )
    return CheckResult("clock", "ok", f"{now:%Y-%m-%d %H:%M:%S} UTC")


def _installed_at() -> datetime:
    """When this package's files were written: the clock cannot honestly be earlier."""
    return datetime.fromtimestamp(Path(__file__).stat().st_mtime, UTC) - timedelta(days=1)


def check_hub(
    url: str | None,
    ca: Path | None,
    role: str,
    *,
    now: Callable[[], datetime] = utcnow,
) -> list[CheckResult]:
    """``GET /health`` over the pinned CA, and the hub's clock from its ``Date`` header."""
    if not url:
        status: Status = "skip" if role == "hub" else "warn"
        hint = "" if role == "hub" else "pass --hub URL or set APPLIANCE_HUB_URL"
        return [CheckResult("hub reachable", status, "no hub URL given", hint)]
    try:
        verify = _verify(ca)
        before = now()
        response = httpx.get(url.rstrip("/") + "/health", verify=verify, timeout=HTTP_TIMEOUT_S)
        after = now()
    except ConfigError as exc:
        return [CheckResult("hub reachable", "fail", exc.message, exc.hint or "")]
    except httpx.HTTPError as exc:
        return [_unreachable(url, ca, exc)]
    if response.status_code != 200:
        return [
            CheckResult(
                "hub reachable",
                "fail",
                f"{url}/health answered HTTP {response.status_code}",
                "is that URL the hub? see the hub's log",
            )
        ]
    elapsed_ms = (after - before).total_seconds() * 1000
    reached = CheckResult("hub reachable", "ok", f"{url} answered in {elapsed_ms:.0f} ms")
    return [reached, check_skew(response.headers.get("date"), before + (after - before) / 2)]


def _verify(ca: Path | None) -> ssl.SSLContext | bool:
    if ca is None:
        return True

    return client_ssl_context(ca)


def _unreachable(url: str, ca: Path | None, exc: httpx.HTTPError) -> CheckResult:
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text:
        hint = (
            "pass --hub-ca with the site CA (ca/ca.crt on the hub) or set APPLIANCE_HUB_CA"
            if ca is None
            else f"is {ca} the CA that issued the hub's certificate, and does it name this host?"
        )
    elif isinstance(exc, httpx.TimeoutException):
        hint = "a firewall may drop the traffic; check the port from this host"
    else:
        hint = "is the hub running (appliance hub serve) and are the host and port right?"
    return CheckResult("hub reachable", "fail", f"cannot reach {url}: {text}", hint)


def check_skew(date_header: str | None, local: datetime) -> CheckResult:
    """Local time against the hub's ``Date`` (one-second resolution, so a second is allowed)."""
    if not date_header:
        return CheckResult("clock vs hub", "skip", "the hub sent no Date header")
    try:
        hub_time = parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        return CheckResult("clock vs hub", "warn", f"unreadable Date header {date_header!r}")
    skew = (hub_time - local).total_seconds()
    if abs(skew) > MAX_SKEW_S:
        side = "ahead of" if skew > 0 else "behind"
        return CheckResult(
            "clock vs hub",
            "warn",
            f"the hub's clock is {abs(skew):.0f} s {side} this host's",
            _NTP_HINT + "; tokens and signed metadata expire by the clock",
        )
    return CheckResult("clock vs hub", "ok", f"within {max(abs(skew), 1.0):.0f} s of the hub")


# -- GPU and certificates -------------------------------------------------------------------


def gpu_names() -> list[str]:
    """The NVIDIA GPUs that nvidia-ml-py sees; empty without the driver or the package."""
    try:
        import pynvml  # lazy: nvidia-ml-py: the worker extra

        pynvml.nvmlInit()
    except Exception:  # ImportError, or NVMLError when there is no driver
        return []
    try:
        names = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            raw = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(index))
            names.append(raw.decode() if isinstance(raw, bytes) else str(raw))
        return names
    except Exception:
        return []
    finally:
        pynvml.nvmlShutdown()


def check_gpu(role: str, names: Sequence[str] | None = None) -> CheckResult:
    """Workers want a GPU (warn without one: they train on the CPU); others do not need one."""
    found = gpu_names() if names is None else list(names)
    if not found:
        if role != "worker":
            return CheckResult("GPU", "ok", f"no GPU (a {role} does not need one)")
        return CheckResult(
            "GPU",
            "warn",
            "no GPU: jobs train on the CPU",
            "install the NVIDIA driver and nvidia-ml-py, or accept CPU training",
        )
    detail = f"{len(found)} x {', '.join(sorted(set(found)))}"
    if role == "worker" and not _torch_has_cuda():
        return CheckResult(
            "GPU",
            "warn",
            f"{detail}, but this torch build cannot use CUDA",
            "install the CUDA build of torch: pip install -e '.[hub]' without constraints/cpu.txt",
        )
    return CheckResult("GPU", "ok", detail)


def _torch_has_cuda() -> bool:
    try:
        import torch  # lazy: torch takes 1 s; only a worker's checks need it

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def check_certificates(data_dir: Path, now: datetime) -> list[CheckResult]:
    """Expiry of the TLS and CA certificates in the data directory (``tls/``, ``ca/``)."""
    paths = sorted((data_dir / "tls").glob("*.crt")) + sorted((data_dir / "ca").glob("*.crt"))
    if not paths:
        return [CheckResult("certificates", "skip", f"none in {data_dir}/tls or ca")]
    return [check_certificate(path, now) for path in paths]


def check_certificate(path: Path, now: datetime) -> CheckResult:
    name = f"certificate {path.parent.name}/{path.name}"
    is_ca = path.parent.name == "ca"
    renew = (
        "make a new CA (appliance ca init --force) and re-issue every certificate"
        if is_ca
        else f"re-issue it: appliance ca issue-server --name {path.stem} --data-dir "
        f"{path.parent.parent}"
    )
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        return CheckResult(name, "fail", f"unreadable: {exc}", renew)
    until = certificate.not_valid_after_utc
    days = (until - now).total_seconds() / 86400
    if certificate.not_valid_before_utc > now:
        return CheckResult(
            name, "fail", f"not valid until {certificate.not_valid_before_utc:%Y-%m-%d}", _NTP_HINT
        )
    if days < 0:
        return CheckResult(name, "fail", f"expired on {until:%Y-%m-%d}", renew)
    if days < CERT_WARN_DAYS:
        return CheckResult(name, "warn", f"expires in {days:.0f} days ({until:%Y-%m-%d})", renew)
    return CheckResult(name, "ok", f"valid until {until:%Y-%m-%d} ({days:.0f} days)")
