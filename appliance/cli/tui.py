"""``appliance tui``: the operator's console in the terminal (needs the ``tui`` extra).

The hub URL and CA come as for every CLI command (flag, ``APPLIANCE_HUB_URL`` /
``APPLIANCE_HUB_CA``, or the session saved by ``appliance login``); the console
signs in itself and keeps its tokens in memory only.
"""

from __future__ import annotations

import argparse

from appliance.cli.connect import hub_ca, hub_flags, hub_url, verify_for
from appliance.errors import ConfigError


def run_tui(args: argparse.Namespace) -> int:
    try:
        from tui import ConsoleApp, HubConnector  # lazy: the console's extra (textual)
    except ImportError as exc:
        raise ConfigError(
            f"the console needs Textual: {exc}", hint="pip install 'appliance[tui]'"
        ) from exc
    url = hub_url(args)
    connector = HubConnector(url, verify_for(hub_ca(args)))
    ConsoleApp(connector, url, username=args.username or "", refresh_s=args.refresh).run()
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "tui",
        parents=[hub_flags()],
        help="open the operator's console: fleet, models and audit log in the terminal",
    )
    parser.add_argument("--username", help="fill in the sign-in form with this name")
    parser.add_argument(
        "--refresh",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how often screens fetch fresh data (default 5)",
    )
    parser.set_defaults(func=run_tui)
