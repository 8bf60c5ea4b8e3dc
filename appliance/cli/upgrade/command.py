"""``appliance upgrade ARCHIVE --release-key PUB`` and ``appliance upgrade --recover``.

Paths follow the playbooks' layout (``ansible/README.md``), all under ``--prefix``: the
installation in ``/opt/appliance``, the hub's settings in ``/etc/appliance/hub.env``, its
data in ``/var/lib/appliance/hub``. Services are the systemd units named by ``--service``
(default ``appliance-hub``), or the operator's ``--stop-command``/``--start-command``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from appliance import settings as config
from appliance.cli.output import console
from appliance.cli.upgrade.errors import UpgradeError
from appliance.cli.upgrade.layout import Installation
from appliance.cli.upgrade.services import Commands, HealthCheck, Services, Systemd
from appliance.settings import HubSettings


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines as systemd's ``EnvironmentFile=`` reads them (comments, blank
    lines and one level of quotes allowed); a missing file is no settings."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise UpgradeError(f"{path}:{number}: not KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        found[key.strip()] = value
    return found


def _services(args: argparse.Namespace) -> Services:
    if args.stop_command or args.start_command:
        if not (args.stop_command and args.start_command):
            raise UpgradeError("give both --stop-command and --start-command, or neither")
        return Commands(args.stop_command, args.start_command)
    return Systemd(tuple(args.service or ["appliance-hub"]))


def _health(args: argparse.Namespace, settings: HubSettings) -> HealthCheck:
    if args.health_url:
        url = args.health_url
    else:
        scheme = "https" if settings.tls.cert else "http"
        host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        url = f"{scheme}://{host}:{settings.hub_port}/health"
    return HealthCheck(url, timeout=args.health_timeout, ca=args.health_ca)


def cmd_upgrade(args: argparse.Namespace) -> int:
    from appliance.cli.upgrade.data import HubData  # lazy: the hub extra, absent on agents
    from appliance.cli.upgrade.run import HostUpgrade  # lazy: imports the hub's backup

    prefix = Path(args.prefix)
    root = args.root or prefix / "opt/appliance"
    env_file = args.env_file or prefix / "etc/appliance/hub.env"
    environment = read_env_file(env_file)
    data_dir = args.data_dir or prefix / "var/lib/appliance/hub"
    settings = config.load(HubSettings, {"data_dir": data_dir}, environ=environment)
    host = HostUpgrade(
        installation=Installation(root),
        services=_services(args),
        health=_health(args, settings),
        data=HubData(settings, {**environment, "APPLIANCE_DATA_DIR": str(settings.data_dir)}),
        python=args.python,
        say=lambda text: console.print(text, highlight=False),
    )
    if args.recover:
        said = host.recover()
    else:
        if args.archive is None or args.release_key is None:
            raise UpgradeError("name the release archive and --release-key (or --recover)")
        said = host.upgrade(args.archive, args.release_key)
    console.print(said, highlight=False)
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    upgrade = sub.add_parser(
        "upgrade",
        help="upgrade this hub host from a signed release archive, offline; roll back by "
        "itself when the new release fails",
        description="Verify the archive against the pinned release key, install it beside "
        "the running release, stop the services, back the hub up, migrate, switch, start "
        "and health-check; any failure after the stop puts the old release and its data "
        "back. Run as root (or as the installation's owner).",
    )
    upgrade.add_argument("archive", nargs="?", type=Path, help="appliance-hub-<version>.tar")
    upgrade.add_argument("--release-key", type=Path, help="the pinned release public key (PEM)")
    upgrade.add_argument(
        "--recover", action="store_true", help="roll back an upgrade that was cut off"
    )
    upgrade.add_argument("--prefix", default="", help="relocates every path (as the playbooks)")
    upgrade.add_argument("--root", type=Path, help="the installation (default /opt/appliance)")
    upgrade.add_argument(
        "--env-file", type=Path, help="the hub's settings (default /etc/appliance/hub.env)"
    )
    upgrade.add_argument(
        "--data-dir", type=Path, help="the hub's data (default /var/lib/appliance/hub)"
    )
    upgrade.add_argument(
        "--python", default="/usr/bin/python3.11", help="the host's Python 3.11 with venv"
    )
    upgrade.add_argument(
        "--service",
        action="append",
        help="a systemd unit to stop and start (repeatable; "
        "default appliance-hub; add appliance-worker on a host that runs one)",
    )
    upgrade.add_argument("--stop-command", help="stop the services (sh -c), instead of systemd")
    upgrade.add_argument("--start-command", help="start the services (sh -c)")
    upgrade.add_argument("--health-url", help="default: the hub's /health on loopback")
    upgrade.add_argument("--health-ca", type=Path, help="the CA that signed the hub's certificate")
    upgrade.add_argument(
        "--health-timeout", type=float, default=120.0, help="seconds to wait (default 120)"
    )
    upgrade.set_defaults(func=cmd_upgrade)
