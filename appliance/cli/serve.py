"""``appliance hub serve`` and ``appliance agent serve``."""

from __future__ import annotations

import argparse
import logging

from appliance import settings as config
from appliance.cli.output import setup_logging
from appliance.settings import RUNTIME_CHOICES, AgentSettings, HubSettings

log = logging.getLogger(__name__)


def _uvicorn(app: object, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="auto",
        timeout_graceful_shutdown=10,
    )


def hub_serve(args: argparse.Namespace) -> int:
    setup_logging()
    settings = config.load(
        HubSettings,
        {
            "data_dir": args.data_dir,
            "host": args.host,
            "hub_port": args.port,
            "database_url": args.database_url,
        },
    )
    from hub.app import create_app

    app = create_app(settings)
    log.info(
        "hub listening on http://%s:%d (data in %s)",
        settings.host,
        settings.hub_port,
        settings.data_dir,
    )
    _uvicorn(app, settings.host, settings.hub_port)
    return 0


def agent_serve(args: argparse.Namespace) -> int:
    setup_logging()
    settings = config.load(
        AgentSettings,
        {
            "hub_url": args.hub,
            "zone": args.zone,
            "data_dir": args.data_dir,
            "agent_name": args.name,
            "host": args.host,
            "agent_port": args.port,
            "runtime": args.runtime,
            "sync_interval": args.sync_interval,
            "trusted_key": args.trusted_key,
            "labels": tuple(args.label) if args.label else None,
        },
    )
    from agent.app import build_core, create_app

    core = build_core(settings)
    log.info(
        "agent %s (zone %s) listening on http://%s:%d, hub %s",
        settings.agent_name,
        settings.zone,
        settings.host,
        settings.agent_port,
        settings.hub_url,
    )
    _uvicorn(create_app(core), settings.host, settings.agent_port)
    return 0


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], data_dir: argparse.ArgumentParser
) -> None:
    hub = sub.add_parser("hub", help="run the hub")
    hub_sub = hub.add_subparsers(dest="hub_command", required=True)
    serve = hub_sub.add_parser("serve", parents=[data_dir], help="serve the hub's HTTP API")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8700)")
    serve.add_argument("--database-url", help="SQLAlchemy URL; default SQLite in the data dir")
    serve.set_defaults(func=hub_serve)

    agent = sub.add_parser("agent", help="run an edge agent")
    agent_sub = agent.add_subparsers(dest="agent_command", required=True)
    aserve = agent_sub.add_parser("serve", parents=[data_dir], help="serve models over KServe v2")
    aserve.add_argument("--hub", help="hub URL, e.g. http://127.0.0.1:8700")
    aserve.add_argument("--zone", help="residency zone, e.g. ae-dxb")
    aserve.add_argument("--name", help="agent name (default: host name)")
    aserve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    aserve.add_argument("--port", type=int, help="port (default 8701)")
    aserve.add_argument("--runtime", choices=RUNTIME_CHOICES, help="model runtime (default auto)")
    aserve.add_argument("--sync-interval", type=float, help="seconds between hub polls")
    aserve.add_argument("--trusted-key", type=_path, help="hub signing public key (PEM)")
    aserve.add_argument("--label", action="append", help="key=value label (repeatable)")
    aserve.set_defaults(func=agent_serve)


def _path(value: str) -> object:
    from pathlib import Path

    return Path(value).expanduser()
