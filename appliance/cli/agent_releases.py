"""``appliance agent-release``: hand the hub the signed agent releases agents upgrade to
(admins), and list what it holds."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from appliance.cli.connect import hub_flags, user_client
from appliance.cli.output import console
from appliance.errors import InvalidInputError


def release_upload(args: argparse.Namespace) -> int:
    path: Path = args.archive
    if not path.is_file():
        raise InvalidInputError(f"no archive at {path}", hint="appliance-agent-<version>.tar")
    with user_client(args) as hub, path.open("rb") as archive:
        info = hub.upload_agent_release(archive)
    console.print(
        f"the hub holds agent release {info.version} ({info.name}, {info.size} bytes, "
        f"SHA256SUMS {info.sums_sha256[:12]}, signed by release key {info.key_id[:16]})",
        highlight=False,
    )
    return 0


def release_list(args: argparse.Namespace) -> int:
    with user_client(args) as hub:
        releases = hub.list_agent_releases()
    table = Table("version", "MiB", "SHA256SUMS", "uploaded (UTC)", "by")
    for r in releases:
        table.add_row(
            r.version,
            f"{r.size / 2**20:.0f}",
            r.sums_sha256[:12],
            r.uploaded_at,
            r.uploaded_by,
        )
    console.print(table)
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hub_flag = hub_flags()
    releases = sub.add_parser(
        "agent-release", help="signed agent releases the hub holds for agents (admin)"
    )
    rsub = releases.add_subparsers(dest="agent_release_command", required=True)
    upload = rsub.add_parser(
        "upload",
        parents=[hub_flag],
        help="give the hub an appliance-agent-<version>.tar (kept only if the site's "
        "release key signed it)",
    )
    upload.add_argument("archive", type=Path)
    upload.set_defaults(func=release_upload)
    lst = rsub.add_parser("list", parents=[hub_flag], help="list the agent releases held")
    lst.set_defaults(func=release_list)
