"""``appliance inference-key``: the credentials client applications present to agents: a
bearer key, or (``--certificate-out``) a client certificate from the site CA whose private
key is made here and never sent."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from appliance.cli.connect import hub_flags, user_client
from appliance.cli.output import console
from appliance.fsutil import atomic_write_bytes
from appliance.security.tls import new_signing_request
from appliance.wire.fleet import NewInferenceKey


def key_create(args: argparse.Namespace) -> int:
    out: Path | None = args.certificate_out
    csr = new_signing_request(out, args.name).decode() if out is not None else None
    with user_client(args) as hub:
        info = hub.create_inference_key(
            NewInferenceKey(
                name=args.name,
                zone=args.zone,
                group=args.group,
                models=args.model or [],
                days=args.days,
                csr=csr,
            )
        )
    if out is not None and info.certificate is not None:
        atomic_write_bytes(out / f"{args.name}.crt", info.certificate.encode(), mode=0o644)
        console.print(
            f"client certificate {info.key_id} ({info.name}) for {info.zone}/{info.group}, "
            f"models {', '.join(info.models) or 'all'}, expires {info.expires_at}: "
            f"{out / (args.name + '.crt')} with its key {out / (args.name + '.key')}. "
            "Clients present it to agents over HTTPS (mutual TLS), trusting the site CA.",
            highlight=False,
        )
        return 0
    console.print(
        f"inference key {info.key_id} ({info.name}) for {info.zone}/{info.group}, "
        f"models {', '.join(info.models) or 'all'}, expires {info.expires_at}. "
        "It is shown this once; clients send it as 'Authorization: Bearer <key>':",
        highlight=False,
    )
    print(info.key)
    return 0


def key_list(args: argparse.Namespace) -> int:
    with user_client(args) as hub:
        keys = hub.list_inference_keys(limit=500)
    table = Table("id", "key id", "name", "zone/group", "models", "expires", "revoked")
    for k in keys:
        table.add_row(
            str(k.id),
            k.key_id,
            k.name,
            f"{k.zone}/{k.group}",
            ", ".join(k.models) or "all",
            k.expires_at,
            k.revoked_at or "",
        )
    console.print(table if keys else "no inference keys yet")
    return 0


def key_revoke(args: argparse.Namespace) -> int:
    with user_client(args) as hub:
        info = hub.revoke_inference_key(args.id)
    console.print(
        f"inference key {info.key_id} revoked at {info.revoked_at}; agents drop it "
        "at their next sync"
    )
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hub_flag = hub_flags()
    keys = sub.add_parser("inference-key", help="keys client applications use on agents (admin)")
    ksub = keys.add_subparsers(dest="inference_key_command", required=True)
    create = ksub.add_parser("create", parents=[hub_flag], help="issue a key (shown once)")
    create.add_argument("--name", required=True, help="whose key it is, e.g. the app's name")
    create.add_argument("--zone", required=True)
    create.add_argument("--group", default="default")
    create.add_argument("--model", action="append", help="a model it may call (repeatable)")
    create.add_argument("--days", type=int, default=365, help="validity (default 365)")
    create.add_argument(
        "--certificate-out",
        type=Path,
        metavar="DIR",
        help="issue a client certificate instead of a key: its key is made in DIR "
        "(NAME.key, 0600) and the certificate written beside it (NAME.crt)",
    )
    create.set_defaults(func=key_create)
    lst = ksub.add_parser("list", parents=[hub_flag], help="list keys")
    lst.set_defaults(func=key_list)
    revoke = ksub.add_parser("revoke", parents=[hub_flag], help="revoke a key by its id")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(func=key_revoke)
