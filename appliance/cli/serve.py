"""``appliance hub serve``, ``appliance agent serve|enrol|token|revoke``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from appliance import settings as config
from appliance.cli.connect import hub_flags, user_client
from appliance.cli.output import console, log_format_flag, setup_logging
from appliance.errors import ConfigError
from appliance.sd_notify import notify
from appliance.security.tls import server_tls_options
from appliance.settings import RUNTIME_CHOICES, AgentSettings, HubSettings

log = logging.getLogger(__name__)


def _uvicorn(
    app: object,
    host: str,
    port: int,
    *,
    proxies: tuple[str, ...] = (),
    peer_certificates: bool = False,
    sockets: list[Any] | None = None,
    **tls: Any,
) -> None:
    """Serve ``app``; tell systemd ``READY=1`` once the socket listens (``Type=notify``).

    ``X-Forwarded-For`` is believed only from ``proxies`` (``APPLIANCE_TRUSTED_PROXIES``);
    without any, never: uvicorn's default trusts it from 127.0.0.1, which let anyone on the
    box (or behind a local tunnel) choose the address the rate limit and audit log see.
    With ``peer_certificates``, each request's scope names the client certificate verified
    in the handshake (:mod:`appliance.peer_tls`). ``sockets``: listen on these, already
    bound (``--workers``), instead of binding ``host:port``.
    """
    import uvicorn  # lazy: uvicorn: the hub and agent extras

    # lazy: uvicorn underneath: the hub and agent extras
    from appliance.http_protocol import HttpProtocol
    from appliance.peer_tls import PeerCertificateProtocol

    class NotifyingServer(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                notify("READY=1")

        async def shutdown(self, sockets: Any = None) -> None:
            notify("STOPPING=1")
            await super().shutdown(sockets=sockets)

    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_level="warning",
        log_config=None,  # uvicorn's lines go through ours, so JSON logs are JSON throughout
        access_log=False,
        http=PeerCertificateProtocol if peer_certificates else HttpProtocol,
        loop="auto",
        timeout_graceful_shutdown=10,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=",".join(proxies) if proxies else "",
        **tls,
    )
    NotifyingServer(config).run(sockets=sockets)


def hub_serve(args: argparse.Namespace) -> int:
    setup_logging(args.log_format)
    settings = config.load(
        HubSettings,
        {
            "data_dir": args.data_dir,
            "host": args.host,
            "hub_port": args.port,
            "database_url": args.database_url,
            "residency_policy": args.residency_policy,
            "backup_dir": args.backup_dir,
            "releases": {"approvals_required": args.approvals_required},
            "tls": {
                "cert": args.tls_cert,
                "key": args.tls_key,
                "client_ca": args.client_ca,
                "require_client_cert": True if args.require_client_cert else None,
            },
        },
    )
    tls: dict[str, Any] = {}
    if settings.tls.cert or settings.tls.key:
        if not (settings.tls.cert and settings.tls.key):
            raise ConfigError("HTTPS needs both --tls-cert and --tls-key")
        tls = dict(
            server_tls_options(
                settings.tls.cert,
                settings.tls.key,
                client_ca=settings.tls.client_ca,
                require_client_cert=settings.tls.require_client_cert,
            )
        )
    from hub.app import create_asgi  # lazy: the hub extra, absent on agent boxes

    app = create_asgi(settings, migrate=args.migrate)
    scheme = "https" if tls else "http"
    log.info(
        "hub listening on %s://%s:%d (data in %s)",
        scheme,
        settings.host,
        settings.hub_port,
        settings.data_dir,
    )
    _uvicorn(app, settings.host, settings.hub_port, proxies=settings.access.trusted_proxies, **tls)
    return 0


def _agent_settings(args: argparse.Namespace) -> AgentSettings:
    return config.load(
        AgentSettings,
        {
            "hub_url": args.hub,
            "zone": args.zone,
            "data_dir": args.data_dir,
            "agent_name": args.name,
            "host": getattr(args, "host", None),
            "agent_port": getattr(args, "port", None),
            "agent_url": args.url,
            "runtime": args.runtime,
            "labels": tuple(args.label) if args.label else None,
            "link": {
                "sync_interval": getattr(args, "sync_interval", None),
                "trusted_root": getattr(args, "trusted_root", None),
                "enrol_token": getattr(args, "enrol_token", None),
                "hub_ca": args.hub_ca,
                "client_cert": getattr(args, "client_cert", None),
                "client_key": getattr(args, "client_key", None),
            },
            "serving": {
                "plain_http": True if getattr(args, "plain_http", False) else None,
                "processes": getattr(args, "workers", None),
            },
        },
    )


def agent_serve(args: argparse.Namespace) -> int:
    setup_logging(args.log_format)
    settings = _agent_settings(args)
    from agent.app import build_core, create_app  # lazy: the agent extra, absent on hubs
    from appliance.cli.serving_processes import (
        ServingProcesses,
        check_count,
        inherited_socket,
        listening_socket,
    )

    if args.serving_fd is not None:  # one of the owner's serving processes
        core = build_core(settings, serving_only=True)
        inherited = [inherited_socket(args.serving_fd)]
        app = create_app(core)
        _uvicorn(app, "", 0, peer_certificates=True, sockets=inherited, **_agent_tls(settings))
        return 0
    count = check_count(settings.serving.processes)
    core = build_core(settings)
    tls = _agent_tls(settings)
    grpc_server = _agent_grpc(core, settings, tls)
    sock = listening_socket(settings.host, settings.agent_port) if count > 1 else None
    serving = None
    if sock is not None:
        retire = core.peers.retire if core.peers else (lambda _pid: None)
        serving = ServingProcesses(count - 1, sys.argv[1:], sock, on_exit=retire)
    log.info(
        "agent %s listening on %s://%s:%d (%d process%s), hub %s",
        settings.agent_name,
        "https" if tls else "http",
        settings.host,
        settings.agent_port,
        count,
        "" if count == 1 else "es",
        settings.hub_url,
    )
    try:
        if serving is not None:
            serving.start()
        _uvicorn(
            create_app(core),
            settings.host,
            settings.agent_port,
            peer_certificates=True,
            sockets=None if sock is None else [sock],
            **tls,
        )
    finally:
        if serving is not None:
            serving.stop()
        if grpc_server is not None:
            grpc_server.stop(grace=5).wait()
    return 0


def _agent_grpc(core: Any, settings: AgentSettings, tls: dict[str, Any]) -> Any:
    """The gRPC front on ``APPLIANCE_GRPC_PORT`` with the HTTPS certificate, if any."""
    if settings.grpc.port <= 0:
        return None
    # gRPC's core logs to stderr by itself, at INFO ("skipping fork() handlers" whenever
    # the agent starts a child while serving), lines no log shipper parses (--log-format
    # json): errors only, unless the operator asks for more. Read once, as grpc loads.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    try:
        from agent.grpc_front import serve_grpc  # lazy: the agent extra, absent on hubs
    except ImportError as exc:
        raise ConfigError(
            f"the agent's gRPC front needs grpcio and protobuf ({exc})",
            hint="pip install 'appliance[agent]', or APPLIANCE_GRPC_PORT=0 to serve HTTP only",
        ) from exc
    from agent.app import grpc_servicer  # lazy: the agent extra, absent on hubs

    files = None
    if tls:
        ca = settings.link.hub_ca if settings.grpc.client_certs else None
        files = (Path(tls["ssl_certfile"]), Path(tls["ssl_keyfile"]), ca)
    return serve_grpc(
        grpc_servicer(core),
        settings.host,
        settings.grpc.port,
        # enough threads for a batched model's full batch to wait on them (agent.batching)
        workers=max(max(settings.inference.workers, 1) * 2, core.inference.batchers.largest()),
        admitted=max(settings.inference.workers, 1) + settings.inference.queue,
        max_message_bytes=settings.serving.max_request_mb * 1024 * 1024,
        tls=files,
    )


def _agent_tls(settings: AgentSettings) -> dict[str, Any]:
    """HTTPS with the certificate the site CA issued at enrolment; plain HTTP only when the
    operator said so (``--plain-http``), never by accident. With the site CA known
    (``--hub-ca``), clients may present a client certificate from it instead of a key."""
    from agent.identity import tls_certificate, tls_key  # lazy: the agent extra, absent on hubs

    certificate = tls_certificate(settings.data_dir)
    if certificate.exists():
        return dict(
            server_tls_options(
                certificate, tls_key(settings.data_dir), client_ca=settings.link.hub_ca
            )
        )
    if settings.serving.plain_http:
        log.warning(
            "serving plain HTTP (APPLIANCE_PLAIN_HTTP): inference keys and answers cross the "
            "network in the clear"
        )
        return {}
    raise ConfigError(
        f"agent in {settings.data_dir} has no HTTPS certificate",
        hint="enrol it with a hub that holds the site CA (APPLIANCE_SITE_CA), or pass "
        "--plain-http for a closed lab",
    )


def agent_enrol(args: argparse.Namespace) -> int:
    settings = _agent_settings(args)
    from agent.app import ensure_enrolled  # lazy: the agent extra, absent on hubs

    identity = ensure_enrolled(settings)
    console.print(
        f"agent {identity.name} enrolled (id {identity.agent_id}, zone {identity.zone}, "
        f"group {identity.group}); identity in {settings.data_dir}"
    )
    return 0


def agent_token(args: argparse.Namespace) -> int:
    with user_client(args) as hub:
        token = hub.create_enrolment_token(args.zone, args.group, int(args.hours * 3600))
    console.print(
        f"enrolment token for zone {token['zone']}, group {token['group']} "
        f"(one use, expires {token['expires_at']}):"
    )
    print(token["token"])
    return 0


def agent_revoke(args: argparse.Namespace) -> int:
    with user_client(args) as hub:
        info = hub.revoke_agent(args.agent_id)
    console.print(f"agent {info.name} (id {info.id}) revoked at {info.revoked_at}")
    return 0


def _path(value: str) -> Path:
    return Path(value).expanduser()


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], data_dir: argparse.ArgumentParser
) -> None:
    hub = sub.add_parser("hub", help="run the hub")
    hub_sub = hub.add_subparsers(dest="hub_command", required=True)
    serve = hub_sub.add_parser(
        "serve", parents=[data_dir, log_format_flag()], help="serve the hub's HTTP API"
    )
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8700)")
    serve.add_argument("--database-url", help="SQLAlchemy URL; default SQLite in the data dir")
    serve.add_argument("--residency-policy", type=_path, help="TOML residency policy")
    serve.add_argument(
        "--approvals-required",
        type=int,
        choices=[1, 2],
        help="distinct approvers for production (default 1)",
    )
    serve.add_argument("--tls-cert", type=_path, help="serve HTTPS with this certificate")
    serve.add_argument("--tls-key", type=_path, help="… and this private key")
    serve.add_argument(
        "--client-ca",
        type=_path,
        help="check client certificates against this CA (mutual TLS)",
    )
    serve.add_argument(
        "--require-client-cert",
        action="store_true",
        help="refuse TLS clients without a certificate from --client-ca",
    )
    serve.add_argument(
        "--migrate",
        action="store_true",
        help="upgrade a database behind this release's schema (after a backup to "
        "--backup-dir) instead of refusing to start",
    )
    serve.add_argument(
        "--backup-dir", type=_path, help="where that backup goes (default <data-dir>-backups)"
    )
    serve.set_defaults(func=hub_serve)

    agent = sub.add_parser("agent", help="run and manage edge agents")
    agent_sub = agent.add_subparsers(dest="agent_command", required=True)
    identity = argparse.ArgumentParser(add_help=False)
    identity.add_argument("--hub", help="hub URL, e.g. https://hub.site:8700")
    identity.add_argument("--hub-ca", type=_path, help="site CA certificate to pin for HTTPS")
    identity.add_argument(
        "--client-cert",
        type=_path,
        help="this agent's certificate, for a hub that requires mutual TLS",
    )
    identity.add_argument("--client-key", type=_path, help="… and its private key")
    identity.add_argument("--name", help="agent name (default: host name)")
    identity.add_argument(
        "--url",
        help="URL the hub and console reach this agent at, told at enrolment "
        "(default: scheme, bind address and port; the host name for 0.0.0.0)",
    )
    identity.add_argument("--zone", help="expected zone (the enrolment token decides it)")
    identity.add_argument("--runtime", choices=RUNTIME_CHOICES, help="model runtime (default auto)")
    identity.add_argument("--label", action="append", help="key=value label (repeatable)")
    identity.add_argument(
        "--trusted-root",
        type=_path,
        help="TUF root metadata to pin at enrolment (default: the hub's, over the pinned CA)",
    )

    aserve = agent_sub.add_parser(
        "serve", parents=[data_dir, identity, log_format_flag()], help="serve models over KServe v2"
    )
    aserve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    aserve.add_argument("--port", type=int, help="port (default 8701)")
    aserve.add_argument("--sync-interval", type=float, help="seconds between hub polls")
    aserve.add_argument("--enrol-token", help="one-time token, used if not enrolled yet")
    aserve.add_argument(
        "--plain-http",
        action="store_true",
        help="serve plain HTTP if enrolment brought no certificate (closed labs only)",
    )
    aserve.add_argument(
        "--workers",
        type=int,
        help="processes answering HTTP on the port (default 1; APPLIANCE_SERVING_PROCESSES): "
        "more serve small models faster; each loads every model",
    )
    aserve.add_argument("--serving-fd", type=int, help=argparse.SUPPRESS)
    aserve.set_defaults(func=agent_serve)

    enrol = agent_sub.add_parser(
        "enrol", parents=[data_dir, identity], help="enrol this agent with a one-time token"
    )
    enrol.add_argument("--enrol-token", "--token", dest="enrol_token", required=True)
    enrol.set_defaults(func=agent_enrol)

    token = agent_sub.add_parser(
        "token", parents=[hub_flags()], help="create a one-time enrolment token (admin)"
    )
    token.add_argument("--zone", required=True)
    token.add_argument("--group", default="default")
    token.add_argument("--hours", type=float, default=24.0, help="validity (default 24)")
    token.set_defaults(func=agent_token)

    revoke = agent_sub.add_parser("revoke", parents=[hub_flags()], help="revoke an agent (admin)")
    revoke.add_argument("agent_id", type=int)
    revoke.set_defaults(func=agent_revoke)
