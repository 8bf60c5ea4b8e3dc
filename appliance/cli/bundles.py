"""``appliance bundle export|import``: signed updates on removable media."""

from __future__ import annotations

import argparse
from pathlib import Path

from appliance import settings as config
from appliance.cli.connect import hub_flags, user_client
from appliance.cli.output import console
from appliance.settings import AgentSettings


def bundle_export(args: argparse.Namespace) -> int:
    with user_client(args) as hub:
        expires = hub.export_update(args.zone, args.group, args.out, days=args.days)
    size = args.out.stat().st_size
    console.print(
        f"wrote {args.out} ({size / 1e6:.1f} MB) for group {args.group} of zone {args.zone}; "
        f"valid until {expires}"
    )
    return 0


def bundle_import(args: argparse.Namespace) -> int:
    from agent.installer import InstallPolicy  # lazy: the agent extra, absent on hubs
    from agent.offline_install import import_bundle  # lazy: the agent extra, absent on hubs

    settings = config.load(AgentSettings, {"hub_url": "offline:", "data_dir": args.data_dir})
    policy = InstallPolicy(runtime=settings.runtime, threads=settings.inference.threads)
    result = import_bundle(args.bundle, settings.data_dir, policy, allow_stale=args.allow_stale)
    for name, version in result.installed:
        console.print(f"installed {name} v{version} (verified through TUF, tested)")
    for name, version in result.unchanged:
        console.print(f"{name} v{version} already installed")
    if result.stale_override:
        console.print("[yellow]bundle had expired; the override is recorded in overrides.jsonl")
    if not result.installed and not result.unchanged:
        console.print("the bundle offers no models for this agent's group")
    return 0


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], data_dir: argparse.ArgumentParser
) -> None:
    bundle = sub.add_parser("bundle", help="offline update bundles for air-gapped agents")
    bsub = bundle.add_subparsers(dest="bundle_command", required=True)
    export = bsub.add_parser(
        "export", parents=[hub_flags()], help="write a group's signed updates to one file"
    )
    export.add_argument("--zone", required=True)
    export.add_argument("--group", default="default")
    export.add_argument("--out", type=Path, required=True, help="file to write (.tar)")
    export.add_argument("--days", type=int, help="validity in days (default: hub's policy)")
    export.set_defaults(func=bundle_export)
    imp = bsub.add_parser(
        "import", parents=[data_dir], help="verify and install an update bundle on this agent"
    )
    imp.add_argument("bundle", type=Path)
    imp.add_argument(
        "--allow-stale",
        action="store_true",
        help="install even though the bundle has expired (recorded)",
    )
    imp.set_defaults(func=bundle_import)
