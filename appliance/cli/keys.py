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


def keys_rotate_token_key(args: argparse.Namespace) -> int:
    from hub.identity.tokens import JwtKeyring

    data_dir = config.load(HubSettings, {"data_dir": args.data_dir}).data_dir
    keyring = JwtKeyring(keys_dir(data_dir) / "jwt")
    kid = keyring.rotate()
    console.print(
        f"token-signing key {kid} is now current; tokens signed by the previous keys "
        "stay valid until they expire. Restart the hub to start signing with it."
    )
    return 0


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], data_dir: argparse.ArgumentParser
) -> None:
    keys = sub.add_parser("keys", help="manage signing keys")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    init = ksub.add_parser("init", parents=[data_dir], help="create the Ed25519 signing key")
    init.add_argument("--force", action="store_true", help="replace an existing key")
    init.set_defaults(func=keys_init)
    rotate = ksub.add_parser(
        "rotate-token-key",
        parents=[data_dir],
        help="start signing user tokens with a new key (hub)",
    )
    rotate.set_defaults(func=keys_rotate_token_key)
