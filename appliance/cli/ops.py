"""``appliance hub backup|restore`` and ``appliance doctor``: keeping a site running.

``hub restore`` exits 0 when the restored audit chain verifies, 3 when it does
not (as ``appliance audit verify`` does); ``doctor`` exits 0 unless a check
fails (1). Refusals (bad archive, non-empty target, …) are errors: exit 2.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Final

from rich.table import Table
from rich.text import Text

from appliance import settings as config
from appliance.cli.doctor import DoctorOptions, run_checks
from appliance.cli.output import console
from appliance.errors import ConfigError
from appliance.security.credentials import default_session_file
from appliance.settings import HubSettings, default_data_dir

if TYPE_CHECKING:
    from appliance.cli.doctor import DoctorOptions

EXIT_OK: Final = 0
EXIT_CHECK_FAILED: Final = 1
EXIT_TAMPERED: Final = 3
_STYLE: Final = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


def _say(text: str) -> None:
    console.print(text, highlight=False, markup=False, emoji=False)


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def hub_backup(args: argparse.Namespace) -> int:
    from hub.backup import backup_hub  # lazy: the hub extra, absent on agent boxes

    settings = config.load(
        HubSettings, {"data_dir": args.data_dir, "database_url": args.database_url}
    )
    result = backup_hub(settings, args.out, overwrite=args.force)
    manifest = result.manifest
    records = "SQLite" if manifest.database == "sqlite" else "PostgreSQL (pg_dump)"
    _say(
        f"backed up {manifest.source_data_dir} ({records}, {len(manifest.files)} files, "
        f"{_mib(manifest.total_bytes)}) to {result.archive}"
    )
    _say(f"audit head: seq={manifest.audit_head.seq} hash={manifest.audit_head.hash[:16]}…")
    for member in result.vanished:
        _say(f"note: {member} was deleted by the hub during the backup and is not in it")
    for path in result.outside:
        _say(f"not in the backup (outside the data directory): {path}")
    _say("the archive holds the hub's private keys: keep it where only operators can read it")
    return EXIT_OK


def hub_restore(args: argparse.Namespace) -> int:
    from hub.backup import restore_hub  # lazy: the hub extra, absent on agent boxes

    result = restore_hub(args.archive, args.data_dir, database_url=args.database_url)
    manifest = result.manifest
    _say(
        f"verified {len(manifest.files)} files ({_mib(manifest.total_bytes)}) against the "
        f"manifest of {manifest.created_at} (appliance {manifest.appliance_version}, "
        f"host {manifest.host})"
    )
    _say(f"restored into {result.data_dir}")
    _say(f"audit: {result.audit.summary()}")
    serve = f"appliance hub serve --data-dir {result.data_dir}"
    if manifest.database == "postgresql":
        serve += " --database-url <the URL restored into>"
    _say(f"start it with: {serve}")
    return EXIT_OK if result.audit.ok else EXIT_TAMPERED


def doctor(args: argparse.Namespace) -> int:
    options = _doctor_options(args)
    results = run_checks(options)
    table = Table(title=f"appliance doctor ({options.role})", title_justify="left")
    for column in ("check", "status", "detail", "fix"):
        table.add_column(column, overflow="fold")
    for result in results:  # Text, not markup: details quote errors like "[Errno 111]"
        table.add_row(
            Text(result.name),
            Text(result.status, style=_STYLE[result.status]),
            Text(result.detail),
            Text(result.hint),
        )
    console.print(table, highlight=False)
    failed = sum(r.status == "fail" for r in results)
    warned = sum(r.status == "warn" for r in results)
    _say(f"{len(results)} checks: {failed} failed, {warned} warnings")
    return EXIT_CHECK_FAILED if failed else EXIT_OK


def _doctor_options(args: argparse.Namespace) -> DoctorOptions:
    data_dir: Path | None = args.data_dir
    if data_dir is None and args.role != "worker":
        env = os.environ.get("APPLIANCE_DATA_DIR")
        data_dir = Path(env).expanduser() if env else default_data_dir() / args.role
    ca = args.hub_ca or os.environ.get("APPLIANCE_HUB_CA")
    return DoctorOptions(
        role=args.role,
        data_dir=data_dir,
        hub_url=args.hub or os.environ.get("APPLIANCE_HUB_URL") or None,
        hub_ca=Path(ca).expanduser() if ca else None,
        session_file=default_session_file() if args.role == "worker" else None,
    )


def hub_group(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """The subcommands of ``appliance hub``, which :mod:`appliance.cli.serve` creates."""
    hub = sub.choices.get("hub")
    for action in hub._actions if hub is not None else []:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise ConfigError("register 'appliance hub serve' before 'appliance hub backup'")


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], data_dir: argparse.ArgumentParser
) -> None:
    hub_sub = hub_group(sub)
    backup = hub_sub.add_parser(
        "backup",
        parents=[data_dir],
        help="write a consistent backup of the hub (records, keys, artifacts, TUF, features, TLS)",
        description="Safe while the hub runs. The archive (mode 0600) holds the hub's private "
        "keys; a manifest lists every file's SHA-256.",
    )
    backup.add_argument("--out", type=_path, required=True, metavar="FILE.tar")
    backup.add_argument(
        "--database-url", help="the hub's records, if not SQLite in the data directory"
    )
    backup.add_argument("--force", action="store_true", help="replace FILE.tar if it exists")
    backup.set_defaults(func=hub_backup)

    restore = hub_sub.add_parser(
        "restore",
        help="restore a backup into a new data directory; exit 3 if its audit chain fails",
        description="Every file is verified before anything is written; the data directory "
        "must be new or empty.",
    )
    restore.add_argument("archive", type=_path, metavar="FILE.tar")
    restore.add_argument(
        "--data-dir", type=_path, required=True, help="new (or empty) data directory"
    )
    restore.add_argument(
        "--database-url",
        help="an empty PostgreSQL database, for backups of a PostgreSQL hub (never taken "
        "from $APPLIANCE_DATABASE_URL, so the live database is never written by mistake)",
    )
    restore.set_defaults(func=hub_restore)

    check = sub.add_parser(
        "doctor",
        parents=[data_dir],
        help="check this host for a role: software, data directory, keys, disk, clock, hub, GPU",
    )
    check.add_argument("--role", choices=("hub", "agent", "worker"), default="hub")
    check.add_argument("--hub", help="hub URL to reach (default $APPLIANCE_HUB_URL)")
    check.add_argument(
        "--hub-ca", type=_path, help="site CA to pin for HTTPS (default $APPLIANCE_HUB_CA)"
    )
    check.set_defaults(func=doctor)


def _path(value: str) -> Path:
    return Path(value).expanduser()
