"""``appliance keys init``: create this node's Ed25519 signing key."""

from __future__ import annotations

import argparse

from appliance import settings as config
from appliance.cli.output import console
from appliance.keys import init_keypair, keys_dir
from appliance.settings import HubSettings


def keys_init(args: argparse.Namespace) -> int:
    data_dir = config.load(HubSettings, {"data_dir": args.data_dir}).data_dir
    folder = keys_dir(data_dir)
    existed = (folder / "signing.key").exists()
    pair = init_keypair(folder, force=args.force)
    verb = "kept existing" if existed and not args.force else "created"
    console.print(f"{verb} signing key {pair.key_id[:16]} in {folder} (private key mode 0600)")
    console.print(f"public key to pin on agents: {folder / 'signing.pub'}")
    return 0


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], data_dir: argparse.ArgumentParser
) -> None:
    keys = sub.add_parser("keys", help="manage signing keys")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    init = ksub.add_parser("init", parents=[data_dir], help="create the Ed25519 signing key")
    init.add_argument("--force", action="store_true", help="replace an existing key")
    init.set_defaults(func=keys_init)
