"""``appliance keys init``: create this node's Ed25519 signing key."""

from __future__ import annotations

import argparse
from pathlib import Path

from appliance import settings as config
from appliance.cli.output import console
from appliance.security.keys import init_keypair, keys_dir
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
    from hub.identity.tokens import JwtKeyring  # lazy: the hub extra, absent on agent boxes

    data_dir = config.load(HubSettings, {"data_dir": args.data_dir}).data_dir
    keyring = JwtKeyring(keys_dir(data_dir) / "jwt")
    kid = keyring.rotate()
    console.print(
        f"token-signing key {kid} is now current; tokens signed by the previous keys "
        "stay valid until they expire. Restart the hub to start signing with it."
    )
    return 0


def root_create(args: argparse.Namespace) -> int:
    # lazy: the hub extra, absent on agent boxes
    from hub.updates.repository import new_root_key, public_key

    pair = new_root_key(args.out, args.name)
    console.print(
        f"created root key {public_key(pair).keyid[:16]} in {args.out / args.name}.key "
        "(mode 0600). Keep it offline; use it with 'appliance keys root rotate --new-key'."
    )
    return 0


def root_rotate(args: argparse.Namespace) -> int:
    # lazy: the hub extra, absent on agent boxes
    from hub.updates.repository import UpdateRepository, load_private

    data_dir = config.load(HubSettings, {"data_dir": args.data_dir}).data_dir
    repo = UpdateRepository(data_dir / "tuf", keys_dir(data_dir) / "tuf")
    old = [load_private(p) for p in args.old_key] if args.old_key else repo.root_keys_here()
    new = [load_private(p) for p in args.new_key] if args.new_key else old
    version = repo.rotate_root(
        old_root_keys=old,
        new_root_keys=new,
        threshold=args.threshold or len(new),
        rotate_online=args.rotate_online or (),
    )
    console.print(f"root v{version} signed by {len(old)} old and {len(new)} new root key(s)")
    if args.rotate_online:
        console.print(f"new online key(s) for {', '.join(args.rotate_online)}; metadata re-signed")
    if args.forget_hub_root_keys:
        for path in repo.forget_root_keys_here():
            console.print(f"removed {path}: the hub holds no root key it no longer needs")
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

    root = ksub.add_parser("root", help="TUF root keys: create offline keys, sign rotations")
    rsub = root.add_subparsers(dest="root_command", required=True)
    create = rsub.add_parser("create", help="create an Ed25519 root key to keep offline")
    create.add_argument("--out", type=Path, required=True, help="folder (e.g. removable media)")
    create.add_argument("--name", default="root-offline-1", help="key file name (no suffix)")
    create.set_defaults(func=root_create)
    rot = rsub.add_parser(
        "rotate", parents=[data_dir], help="sign the hub's next root version (run on the hub)"
    )
    rot.add_argument(
        "--old-key",
        type=Path,
        action="append",
        help="current root key file (repeatable; default: the hub's own root keys)",
    )
    rot.add_argument(
        "--new-key",
        type=Path,
        action="append",
        help="root key file for the new root (repeatable; default: keep the old keys)",
    )
    rot.add_argument("--threshold", type=int, help="signatures root needs (default: all new)")
    rot.add_argument(
        "--rotate-online",
        action="append",
        choices=("targets", "snapshot", "timestamp"),
        help="also replace this online key (e.g. after a compromise); repeatable",
    )
    rot.add_argument(
        "--forget-hub-root-keys",
        action="store_true",
        help="delete root keys on the hub that the new root no longer lists",
    )
    rot.set_defaults(func=root_rotate)
