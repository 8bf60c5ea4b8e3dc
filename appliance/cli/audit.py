"""``appliance audit export`` and ``appliance audit verify``: the audit log for auditors.

``verify`` prints ``OK: N entries, M checkpoints`` and exits 0, or
``TAMPERED: first bad entry seq=K: <reason>`` and exits 3 (a malformed export
counts as tampered). Missing files, keys or databases are errors (exit 2).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from appliance import settings as config
from appliance.cli.output import console
from appliance.errors import ConfigError
from appliance.security.keys import keys_dir, load_keypair, load_public_key
from appliance.settings import HubSettings

if TYPE_CHECKING:
    from sqlmodel import Session

EXIT_OK = 0
EXIT_TAMPERED = 3


@contextmanager
def hub_database(data_dir: Path | None) -> Iterator[Session]:
    """One transaction on the hub's own database, read where the hub reads it; never created."""
    from sqlalchemy.exc import DBAPIError  # lazy: the hub extra, absent on agent boxes

    from hub.db import make_engine, session_scope  # lazy: the hub extra, absent on agent boxes

    settings = config.load(HubSettings, {"data_dir": data_dir})
    url = settings.resolved_database_url
    if not settings.database_url and not (settings.data_dir / "hub.db").is_file():
        raise ConfigError(
            f"no hub database at {settings.data_dir / 'hub.db'}",
            hint="pass the hub's --data-dir or set APPLIANCE_DATABASE_URL",
        )
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            yield session
    except DBAPIError as exc:
        where = engine.url.render_as_string(hide_password=True)
        raise ConfigError(
            f"cannot read the audit log from {where}: {exc.orig}",
            hint="is this the hub's database, and has the hub started once?",
        ) from exc
    finally:
        engine.dispose()


def audit_export(args: argparse.Namespace) -> int:
    # lazy: the hub extra, absent on agent boxes
    from hub.audit import AuditLog, checkpoints_path, export_log

    data_dir = config.load(HubSettings, {"data_dir": args.data_dir}).data_dir
    key = load_keypair(keys_dir(data_dir)) if args.checkpoint else None
    log = AuditLog(key)
    if args.checkpoint:
        with hub_database(args.data_dir) as session:
            log.checkpoint(session)
    with hub_database(args.data_dir) as session:
        n_entries, n_checkpoints = export_log(session, log, args.out)
    console.print(
        f"exported {n_entries} entries to {args.out} and {n_checkpoints} checkpoints "
        f"to {checkpoints_path(args.out)}",
        highlight=False,
        markup=False,
    )
    return EXIT_OK


def audit_verify(args: argparse.Namespace) -> int:
    from hub.audit import (  # lazy: the hub extra, absent on agent boxes
        AuditFormatError,
        AuditLog,
        VerifyReport,
        checkpoints_path,
        read_checkpoints,
        read_entries,
        verify_chain,
    )

    if args.export is not None and args.data_dir is not None:
        raise ConfigError("give --export or --data-dir, not both")
    if args.export is not None and args.public_key is None:
        raise ConfigError(
            "--export needs --public-key",
            hint="pass the hub's signing.pub, obtained from the hub's operator out of band",
        )
    try:
        extra = [cp for path in args.checkpoints for cp in read_checkpoints(path)]
        report: VerifyReport
        if args.export is not None:
            public_key = load_public_key(args.public_key)
            checkpoints = read_checkpoints(checkpoints_path(args.export)) + extra
            report = verify_chain(read_entries(args.export), checkpoints, public_key)
        else:
            data_dir = config.load(HubSettings, {"data_dir": args.data_dir}).data_dir
            public_key = load_public_key(args.public_key or keys_dir(data_dir) / "signing.pub")
            with hub_database(args.data_dir) as session:
                report = AuditLog().verify(session, public_key, extra_checkpoints=extra)
    except AuditFormatError as exc:
        console.print(f"TAMPERED: {exc}", highlight=False, markup=False)
        return EXIT_TAMPERED
    console.print(report.summary(), highlight=False, markup=False)
    return EXIT_OK if report.ok else EXIT_TAMPERED


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], data_dir: argparse.ArgumentParser
) -> None:
    audit = sub.add_parser("audit", help="export and verify the hub's tamper-evident audit log")
    asub = audit.add_subparsers(dest="audit_command", required=True)

    export = asub.add_parser(
        "export",
        parents=[data_dir],
        help="write the log as JSON lines plus FILE.checkpoints.jsonl for offline checks",
    )
    export.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="entries file to write"
    )
    export.add_argument(
        "--checkpoint",
        action="store_true",
        help="first sign a checkpoint of the newest entry (needs the hub's private key), "
        "so the export is covered to its end",
    )
    export.set_defaults(func=audit_export)

    verify = asub.add_parser(
        "verify",
        parents=[data_dir],
        help="check the chain and its signed checkpoints: exit 0 if intact, 3 if tampered",
        description="Verify an export offline (--export FILE --public-key PEM) or the hub's "
        "database directly (--data-dir, or $APPLIANCE_DATABASE_URL).",
    )
    verify.add_argument(
        "--export",
        type=Path,
        metavar="FILE",
        help="an export FILE to verify; its checkpoints are read from FILE.checkpoints.jsonl",
    )
    verify.add_argument(
        "--public-key",
        type=Path,
        metavar="PEM",
        help="the hub's public key (PEM) as pinned out of band; "
        "default DATA_DIR/keys/signing.pub when reading the database",
    )
    verify.add_argument(
        "--checkpoints",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="also hold the chain to these checkpoints, e.g. the FILE.checkpoints.jsonl of an "
        "earlier export (catches entries and checkpoints removed since); repeatable",
    )
    verify.set_defaults(func=audit_verify)
