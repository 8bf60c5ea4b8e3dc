"""``appliance upgrade ARCHIVE --release-key PUB`` and ``appliance upgrade --recover``.

The host is a hub host or an agent host, as the archive says (``appliance-hub-…`` or
``appliance-agent-…``; ``--recover``: the release the cut-off upgrade was installing).
Paths follow the playbooks' layout (``ansible/README.md``), all under ``--prefix``: the
installation in ``/opt/appliance``, the settings in ``/etc/appliance/<kind>.env``, the
data in ``/var/lib/appliance/<kind>``. Services are the systemd units named by
``--service`` (default ``appliance-<kind>``), or the operator's
``--stop-command``/``--start-command``.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import msgspec

from appliance import settings as config
from appliance.cli.output import console
from appliance.cli.upgrade.agent_data import AgentData
from appliance.cli.upgrade.errors import UpgradeError
from appliance.cli.upgrade.install import archive_kind
from appliance.cli.upgrade.journal import Journal
from appliance.cli.upgrade.layout import Installation
from appliance.cli.upgrade.run import HostUpgrade
from appliance.cli.upgrade.services import Commands, HealthCheck, Services, Systemd
from appliance.errors import ApplianceError
from appliance.fsutil import atomic_write_bytes
from appliance.settings import AgentSettings, HubSettings
from appliance.wire.upgrades import (
    ARCHIVES,
    RESULT_FILE,
    UpgradeRequest,
    UpgradeResult,
)


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


def _services(args: argparse.Namespace, kind: str) -> Services:
    if args.stop_command or args.start_command:
        if not (args.stop_command and args.start_command):
            raise UpgradeError("give both --stop-command and --start-command, or neither")
        return Commands(args.stop_command, args.start_command)
    return Systemd(tuple(args.service or [f"appliance-{kind}"]))


def _loopback_url(https: bool, host: str, port: int, path: str) -> str:
    host = host if host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return f"{'https' if https else 'http'}://{host}:{port}{path}"


def host_kind(args: argparse.Namespace, installation: Installation) -> str:
    """``hub`` or ``agent``: from ``--kind``, else the archive's manifest, else (recovering)
    the release the cut-off upgrade was installing. The archive's word is checked again
    once its signature is (:meth:`HostUpgrade.upgrade`)."""
    if args.kind:
        return str(args.kind)
    if args.archive is not None:
        return archive_kind(args.archive)
    journal = Journal.read(installation.journal)
    if journal is not None and journal.release.startswith("appliance-agent-"):
        return "agent"
    return "hub"


def _hub(args: argparse.Namespace, prefix: Path, installation: Installation) -> HostUpgrade:
    from appliance.cli.upgrade.data import HubData  # lazy: the hub extra, absent on agents

    environment = read_env_file(args.env_file or prefix / "etc/appliance/hub.env")
    data_dir = args.data_dir or prefix / "var/lib/appliance/hub"
    settings = config.load(HubSettings, {"data_dir": data_dir}, environ=environment)
    url = args.health_url or _loopback_url(
        settings.tls.cert is not None, settings.host, settings.hub_port, "/health"
    )
    return HostUpgrade(
        kind="hub",
        installation=installation,
        services=_services(args, "hub"),
        health=_health_check(args, url),
        data=HubData(settings, {**environment, "APPLIANCE_DATA_DIR": str(settings.data_dir)}),
        python=args.python,
        say=_say,
    )


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a count (0 or more)")
    return value


def _health_check(args: argparse.Namespace, url: str) -> HealthCheck:
    return HealthCheck(
        url, timeout=args.health_timeout, ca=args.health_ca, broken_after=args.health_failures
    )


def _agent(args: argparse.Namespace, prefix: Path, installation: Installation) -> HostUpgrade:
    environment = read_env_file(args.env_file or prefix / "etc/appliance/agent.env")
    data_dir = args.data_dir or prefix / "var/lib/appliance/agent"
    settings = config.load(
        AgentSettings,
        {"data_dir": data_dir, "hub_url": environment.get("APPLIANCE_HUB_URL", "")},
        environ=environment,
    )
    https = not settings.serving.plain_http
    url = args.health_url or _loopback_url(https, settings.host, settings.agent_port, "/v2")
    ready_url = url.removesuffix("/v2").rstrip("/") + "/v2/health/ready"
    health = _health_check(args, url)
    if health.answers(ready_url):  # an agent that served models before must serve them after
        health = dataclasses.replace(health, ready_url=ready_url)
    return HostUpgrade(
        kind="agent",
        installation=installation,
        services=_services(args, "agent"),
        health=health,
        data=AgentData(settings.data_dir),
        python=args.python,
        say=_say,
    )


def _say(text: str) -> None:
    console.print(text, highlight=False)


def host_prefix(text: str) -> Path:
    """``--prefix`` as an absolute folder: the playbooks pass ``""`` for none, which must
    mean ``/`` (``Path("")`` is the working directory, and every path would follow it)."""
    return Path(text or "/").absolute()


def cmd_upgrade(args: argparse.Namespace) -> int:
    prefix = host_prefix(args.prefix)
    installation = Installation(args.root or prefix / "opt/appliance")
    if args.request is not None:
        return _requested(args, prefix, installation)
    kind = host_kind(args, installation)
    host = (_agent if kind == "agent" else _hub)(args, prefix, installation)
    if args.recover:
        said = host.recover()
    else:
        if args.archive is None or args.release_key is None:
            raise UpgradeError("name the release archive and --release-key (or --recover)")
        said = host.upgrade(args.archive, args.release_key)
    console.print(said, highlight=False)
    return 0


def _requested(args: argparse.Namespace, prefix: Path, installation: Installation) -> int:
    """The upgrade an agent asked for (``--request``): the archive it fetched, checked
    here against the host's pinned release key like any other; the outcome written back
    for the agent (:mod:`appliance.wire.upgrades`), and the request removed either way."""
    if args.release_key is None:
        raise UpgradeError("--request needs --release-key (the host's pinned release key)")
    data_dir = Path(args.data_dir or prefix / "var/lib/appliance/agent")
    try:
        request = read_request(args.request, data_dir)
        host = _agent(args, prefix, installation)
        try:
            said = host.upgrade(data_dir / ARCHIVES / request.archive, args.release_key)
        except ApplianceError as exc:
            result = UpgradeResult(version=request.version, ok=False, said=str(exc))
            write_result(data_dir, result)
            raise
    finally:  # answered or refused, never run twice (a path unit would start it again)
        args.request.unlink(missing_ok=True)
    write_result(data_dir, UpgradeResult(version=request.version, ok=True, said=said))
    console.print(said, highlight=False)
    return 0


def read_request(path: Path, data_dir: Path) -> UpgradeRequest:
    """The agent's request; its archive must be a plain name in the data directory's
    ``upgrades/`` (the agent never points the upgrader elsewhere)."""
    try:
        request = msgspec.json.decode(path.read_bytes(), type=UpgradeRequest)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UpgradeError(f"cannot read the upgrade request {path}: {exc}") from exc
    name = request.archive
    if "/" in name or name in ("", ".", "..") or not (data_dir / ARCHIVES / name).is_file():
        raise UpgradeError(
            f"the upgrade request names no archive in {data_dir / ARCHIVES}: {name!r}"
        )
    return request


def write_result(data_dir: Path, result: UpgradeResult) -> None:
    """The outcome, readable by the agent's user (root wrote it)."""
    atomic_write_bytes(data_dir / RESULT_FILE, msgspec.json.encode(result), mode=0o644)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    upgrade = sub.add_parser(
        "upgrade",
        help="upgrade this hub or agent host from a signed release archive, offline; roll "
        "back by itself when the new release fails",
        description="Verify the archive against the pinned release key, install it beside "
        "the running release, stop the services, back the data up (a hub's database and "
        "files, an agent's state), migrate, switch, start and health-check; any failure "
        "after the stop puts the old release and its data back. Run as root (or as the "
        "installation's owner).",
    )
    upgrade.add_argument(
        "archive", nargs="?", type=Path, help="appliance-hub-<version>.tar or appliance-agent-…"
    )
    upgrade.add_argument(
        "--kind", choices=("hub", "agent"), help="the host's kind (default: the archive's)"
    )
    upgrade.add_argument("--release-key", type=Path, help="the pinned release public key (PEM)")
    upgrade.add_argument(
        "--recover", action="store_true", help="roll back an upgrade that was cut off"
    )
    upgrade.add_argument(
        "--request",
        type=Path,
        metavar="FILE",
        help="run the upgrade an agent asked for (its upgrade-request.json; what "
        "appliance-agent-upgrade.service runs) and write its outcome back for the agent",
    )
    upgrade.add_argument("--prefix", default="", help="relocates every path (as the playbooks)")
    upgrade.add_argument("--root", type=Path, help="the installation (default /opt/appliance)")
    upgrade.add_argument(
        "--env-file", type=Path, help="the settings (default /etc/appliance/<kind>.env)"
    )
    upgrade.add_argument(
        "--data-dir", type=Path, help="the data (default /var/lib/appliance/<kind>)"
    )
    upgrade.add_argument(
        "--python", default="/usr/bin/python3.11", help="the host's Python 3.11 with venv"
    )
    upgrade.add_argument(
        "--service",
        action="append",
        help="a systemd unit to stop and start (repeatable; "
        "default appliance-<kind>; add appliance-worker on a hub host that runs one)",
    )
    upgrade.add_argument("--stop-command", help="stop the services (sh -c), instead of systemd")
    upgrade.add_argument("--start-command", help="start the services (sh -c)")
    upgrade.add_argument(
        "--health-url", help="default: on loopback, the hub's /health or the agent's /v2"
    )
    upgrade.add_argument(
        "--health-ca", type=Path, help="the CA that signed the service's certificate"
    )
    upgrade.add_argument(
        "--health-timeout", type=float, default=120.0, help="seconds to wait (default 120)"
    )
    upgrade.add_argument(
        "--health-failures",
        type=_count,
        default=3,
        metavar="N",
        help="answers of 500 in a row that fail the check at once, before the timeout "
        "(default 3; 0 waits out the timeout)",
    )
    upgrade.set_defaults(func=cmd_upgrade)
