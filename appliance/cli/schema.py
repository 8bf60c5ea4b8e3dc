"""``appliance hub db upgrade|current|history|check``: the hub database's schema revision.

``upgrade`` backs the hub up (to ``--backup-dir``, default ``<data-dir>-backups``) before
it changes anything; ``check`` exits 1 when the tables in code and the database's differ
(after ``upgrade``, a difference means a model changed without a migration).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from appliance import settings as config
from appliance.cli.ops import hub_group
from appliance.cli.output import console
from appliance.settings import HubSettings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def _settings(args: argparse.Namespace) -> HubSettings:
    return config.load(
        HubSettings,
        {
            "data_dir": args.data_dir,
            "database_url": args.database_url,
            "backup_dir": getattr(args, "backup_dir", None),
        },
    )


def _engine(settings: HubSettings) -> Engine:
    from hub.db import make_engine  # lazy: the hub extra, absent on agent boxes

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return make_engine(settings.resolved_database_url)


def db_current(args: argparse.Namespace) -> int:
    from hub import schema  # lazy: the hub extra, absent on agent boxes

    found = schema.state(_engine(_settings(args)))
    console.print(found.describe(), highlight=False)
    return 0 if found.at_head else 1


def db_upgrade(args: argparse.Namespace) -> int:
    from hub import schema  # lazy: the hub extra, absent on agent boxes
    from hub.backup import backup_before_migrating  # lazy: the hub extra, as above

    settings = _settings(args)

    def backup() -> None:
        console.print(f"backed up to {backup_before_migrating(settings)}", highlight=False)

    before, after = schema.upgrade(_engine(settings), backup=None if args.no_backup else backup)
    if after is before:
        console.print(f"already at {before.head}; nothing to do", highlight=False)
    else:
        console.print(f"upgraded: {before.describe()} → {after.current}", highlight=False)
    return 0


def db_history(args: argparse.Namespace) -> int:
    from hub import schema  # lazy: the hub extra, absent on agent boxes

    for revision, follows, message in schema.history():
        console.print(f"{revision}  (after {follows or 'nothing'})  {message}", highlight=False)
    return 0


def db_check(args: argparse.Namespace) -> int:
    from hub import schema  # lazy: the hub extra, absent on agent boxes

    engine = _engine(_settings(args))
    found = schema.state(engine)
    if not found.at_head:
        console.print(f"[red]{found.describe()}[/]: run 'appliance hub db upgrade' first")
        return 1
    differences = schema.differences(engine)
    for difference in differences:
        console.print(f"[red]differs:[/] {difference}", highlight=False)
    if differences:
        console.print("the tables in code differ from the migrations: add a revision")
        return 1
    console.print(f"at {found.head}; the tables in code match the database", highlight=False)
    return 0


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], data_dir: argparse.ArgumentParser
) -> None:
    database = argparse.ArgumentParser(add_help=False, parents=[data_dir])
    database.add_argument(
        "--database-url", help="the hub's records, if not SQLite in the data directory"
    )
    db = hub_group(sub).add_parser("db", help="the hub database's schema revision")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser(
        "upgrade",
        parents=[database],
        help="back the hub up, then bring its database to this release's schema",
        description="Stop the hub first. A database made before migrations existed is taken "
        "as the baseline revision.",
    )
    upgrade.add_argument(
        "--backup-dir", type=Path, help="where the backup goes (default <data-dir>-backups)"
    )
    upgrade.add_argument(
        "--no-backup",
        action="store_true",
        help="take no backup: the caller has one (appliance upgrade takes it with the hub down)",
    )
    upgrade.set_defaults(func=db_upgrade)
    current = db_sub.add_parser(
        "current", parents=[database], help="the database's revision; exit 1 if behind"
    )
    current.set_defaults(func=db_current)
    history = db_sub.add_parser("history", help="every revision this release knows")
    history.set_defaults(func=db_history)
    check = db_sub.add_parser(
        "check",
        parents=[database],
        help="exit 1 when the tables in code and the database's differ",
    )
    check.set_defaults(func=db_check)
