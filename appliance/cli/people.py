"""``appliance login``, ``logout`` and ``users create``."""

from __future__ import annotations

import argparse
import getpass
import sys

from appliance import settings as config
from appliance.cli.connect import (
    anonymous_client,
    hub_ca,
    hub_flags,
    hub_url,
    save_session,
    user_client,
)
from appliance.cli.output import console
from appliance.errors import ConfigError
from appliance.security.credentials import default_session_file
from appliance.settings import HubSettings


def _password(args: argparse.Namespace, *, confirm: bool) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if confirm and getpass.getpass("again: ") != first:
        raise ConfigError("the two passwords differ")
    return first


def login(args: argparse.Namespace) -> int:
    password = _password(args, confirm=False)
    with anonymous_client(args) as hub:
        tokens = hub.sign_in(args.username, password)
    path = save_session(hub_url(args), hub_ca(args), tokens)
    console.print(f"signed in to {hub_url(args)} as {args.username} (session in {path})")
    return 0


def logout(_args: argparse.Namespace) -> int:
    default_session_file().unlink(missing_ok=True)
    console.print("signed out")
    return 0


def users_create(args: argparse.Namespace) -> int:
    password = _password(args, confirm=True)
    if args.data_dir is not None:  # bootstrap on the hub's own box, no hub process needed
        from hub.services import build_services  # lazy: the hub extra, absent on agent boxes

        services = build_services(config.load(HubSettings, {"data_dir": args.data_dir}))
        info = services.identity.create_user(
            args.username, password, args.role, actor="system:bootstrap", zone=args.zone
        )
        services.engine.dispose()
        console.print(f"created user {info.username} with roles {', '.join(info.roles)}")
        return 0
    with user_client(args) as hub:
        created = hub.create_user(args.username, password, args.role, zone=args.zone)
    console.print(f"created user {created['username']} with roles {', '.join(created['roles'])}")
    return 0


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], data_dir: argparse.ArgumentParser
) -> None:
    password = argparse.ArgumentParser(add_help=False)
    password.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input instead of prompting",
    )
    log_in = sub.add_parser("login", parents=[hub_flags(), password], help="sign in to a hub")
    log_in.add_argument("--username", required=True)
    log_in.set_defaults(func=login)
    log_out = sub.add_parser("logout", help="forget the signed-in session")
    log_out.set_defaults(func=logout)

    users = sub.add_parser("users", help="manage users")
    usub = users.add_subparsers(dest="users_command", required=True)
    create = usub.add_parser(
        "create",
        parents=[hub_flags(), password, data_dir],
        help="create a user (with --data-dir: directly in the hub's records, to bootstrap)",
    )
    create.add_argument("username")
    create.add_argument(
        "--role",
        action="append",
        required=True,
        help="admin, ml-engineer, approver, auditor, viewer or worker (repeatable)",
    )
    create.add_argument(
        "--zone",
        help="bind the account to a residency zone (a training worker reads only what that "
        "zone may read); default the hub's own zone",
    )
    create.set_defaults(func=users_create)
