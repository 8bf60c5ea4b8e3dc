"""Starting and stopping hub and agent processes on loopback.

Used by the demo and by the integration tests, so both exercise the same
real commands a user would run.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

import httpx

from appliance.children import dying_with
from appliance.errors import ApplianceError
from appliance.security.tls import client_ssl_context

T = TypeVar("T")


class ProcessStartError(ApplianceError):
    """A service process exited or never became healthy."""


class WaitTimeoutError(ApplianceError):
    """Something awaited on a service did not happen in time."""


def wait_for(
    what: str, check: Callable[[], T | None], timeout: float = 60.0, every: float = 0.1
) -> T:
    """Poll ``check`` every ``every`` seconds until it returns something truthy; return
    that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise WaitTimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


@functools.cache
def default_trust() -> ssl.SSLContext:
    """What httpx trusts when told ``verify=True``, made once. Without a client, httpx makes
    it again for every call (its CA bundle read: 20-30 ms of CPU, 20 times a loopback
    request's own), and the demo and the tests probe their services many times a second."""
    return httpx.create_ssl_context()


def serving_version(
    agent_url: str,
    model: str,
    headers: dict[str, str] | None = None,
    verify: ssl.SSLContext | None = None,
) -> str | None:
    """The version of ``model`` an agent serves now, or None (not loaded, not answering);
    ``headers`` carry the inference key an agent with a closed data plane wants, ``verify``
    the site CA its HTTPS certificate chains to."""
    try:
        response = httpx.get(
            f"{agent_url}/v2/models/{model}",
            headers=headers,
            verify=verify or default_trust(),
            timeout=2.0,
        )
    except httpx.HTTPError:
        return None
    return str(response.json()["versions"][0]) if response.status_code == 200 else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServiceProcess:
    name: str
    args: list[str]
    url: str
    health_path: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    ca_file: Path | None = None
    """The site CA, when the service speaks HTTPS."""
    grpc_address: str | None = None
    """``host:port`` of an agent's gRPC front (same TLS as its HTTPS)."""
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "appliance", *self.args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,  # Ctrl-C in a terminal reaches the demo, which stops it
            preexec_fn=dying_with(os.getpid()),  # and it stops when the demo dies, however
        )

    def wait_healthy(self, timeout: float = 60.0, *, accept: tuple[int, ...] = (200,)) -> float:
        """Wait until the health URL answers; return seconds waited."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ProcessStartError(
                    f"{self.name} exited with code {self.process.returncode}",
                    hint=f"see {self.log_path}:\n{self.log_tail()}",
                )
            try:
                response = httpx.get(self.url + self.health_path, timeout=1.0, verify=self.verify)
                if response.status_code in accept:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise ProcessStartError(
            f"{self.name} not healthy after {timeout:.0f} s", hint=f"see {self.log_path}"
        )

    @property
    def verify(self) -> ssl.SSLContext:
        """What its HTTPS certificate must chain to (made once: it is asked at every probe)."""
        if self.ca_file is None:
            return default_trust()
        return _site_trust(self.ca_file)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        self.send_signal(signal.SIGTERM)
        if self.process is not None:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()

    def kill(self) -> None:
        """Stop abruptly, as a power cut would."""
        self.send_signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()
        self._close_log()

    def send_signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the service and the processes it started, if it still runs."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                os.killpg(self.process.pid, sig)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


@functools.cache
def _site_trust(ca_file: Path) -> ssl.SSLContext:
    return client_ssl_context(ca_file)


def stop_all(processes: Iterable[ServiceProcess], timeout: float = 10.0) -> None:
    """Stop every one together: all are told at once, and all get ``timeout`` in total
    before the rest are killed (one by one they would take up to ``timeout`` each)."""
    running = list(processes)
    for proc in running:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in running:
        proc.stop(max(deadline - time.monotonic(), 0.1))


def hub_process(
    data_dir: Path,
    port: int | None = None,
    *,
    database_url: str | None = None,
    tls: tuple[Path, Path, Path] | None = None,
    extra_args: tuple[str, ...] = (),
) -> ServiceProcess:
    """A hub; ``tls`` is (certificate, key, site CA) to serve HTTPS."""
    port = port or free_port()
    args = ["hub", "serve", "--data-dir", str(data_dir), "--port", str(port), *extra_args]
    if database_url:
        args += ["--database-url", database_url]
    if tls:
        args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    return ServiceProcess(
        name="hub",
        args=args,
        url=f"{'https' if tls else 'http'}://127.0.0.1:{port}",
        health_path="/health",
        log_path=data_dir.parent / "logs" / f"{data_dir.name}.log",
        ca_file=tls[2] if tls else None,
    )


def agent_process(
    name: str,
    data_dir: Path,
    hub_url: str,
    trusted_root: Path | None,
    *,
    enrol_token: str | None = None,
    hub_ca: Path | None = None,
    port: int | None = None,
    sync_interval: float = 1.0,
    runtime: str = "auto",
    probation_seconds: float | None = None,
    env: dict[str, str] | None = None,
    open_data_plane: bool = False,
    plain_http: bool = False,
    grpc_port: int | None = None,
) -> ServiceProcess:
    """An agent that pins ``trusted_root`` at enrolment, as an installer would; its gRPC
    front on ``grpc_port`` (a free one by default, see ``grpc_address``).

    With ``enrol_token`` it enrols on its first start; later starts reuse its identity.
    Without ``trusted_root`` it pins the hub's current root over the enrolment channel.
    """
    port = port or free_port()
    grpc_port = grpc_port or free_port()
    args = [
        "agent",
        "serve",
        "--hub",
        hub_url,
        "--name",
        name,
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--sync-interval",
        str(sync_interval),
        "--runtime",
        runtime,
    ]
    if enrol_token:
        args += ["--enrol-token", enrol_token]
    if trusted_root is not None:
        args += ["--trusted-root", str(trusted_root)]
    if hub_ca:
        args += ["--hub-ca", str(hub_ca)]
    if plain_http:
        args += ["--plain-http"]
    return ServiceProcess(
        name=name,
        args=args,
        # HTTPS with the certificate the site CA issued at enrolment, checked against it
        url=f"{'http' if plain_http else 'https'}://127.0.0.1:{port}",
        ca_file=None if plain_http else hub_ca,
        health_path="/v2/health/live",
        log_path=data_dir.parent / "logs" / f"{data_dir.name}.log",
        env={
            **(
                {"APPLIANCE_PROBATION_SECONDS": str(probation_seconds)} if probation_seconds else {}
            ),
            **({"APPLIANCE_OPEN_DATA_PLANE": "true"} if open_data_plane else {}),
            "APPLIANCE_GRPC_PORT": str(grpc_port),
            **(env or {}),
        },
        grpc_address=f"127.0.0.1:{grpc_port}",
    )


def worker_process(
    name: str,
    session_file: Path,
    hub_url: str,
    log_dir: Path,
    *,
    zone: str = "ae-dxb",
    heartbeat_s: float = 1.0,
    poll_s: float = 0.5,
    device: str = "auto",
    hub_ca: Path | None = None,
) -> ServiceProcess:
    """A training worker signed in through ``session_file`` (a 'worker' account's session).

    It has no HTTP endpoint: watch it through the hub's job records and its log.
    """
    args = [
        "worker",
        "--hub",
        hub_url,
        "--name",
        name,
        "--zone",
        zone,
        "--device",
        device,
        "--heartbeat-s",
        str(heartbeat_s),
        "--poll-s",
        str(poll_s),
    ]
    if hub_ca:
        args += ["--hub-ca", str(hub_ca)]
    return ServiceProcess(
        name=name,
        args=args,
        url="",
        health_path="",
        log_path=log_dir / f"{name}.log",
        env={"APPLIANCE_SESSION_FILE": str(session_file)},
    )
