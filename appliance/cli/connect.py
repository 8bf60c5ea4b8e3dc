"""How CLI commands reach the hub: URL, pinned CA and the signed-in user's tokens.

``appliance login`` stores the hub URL, the CA file and the tokens in the
session file (``~/.config/appliance/session.json``, mode 0600, or
``$APPLIANCE_SESSION_FILE``); later commands take them from there unless a
flag or ``APPLIANCE_HUB_URL``/``APPLIANCE_HUB_CA`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from appliance.client.hub import HubClient
from appliance.security.credentials import UserCredentials, default_session_file
from appliance.security.tls import client_ssl_context

DEFAULT_HUB = "http://127.0.0.1:8700"


def hub_flags() -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument(
        "--hub", help=f"hub URL (default: the signed-in hub, $APPLIANCE_HUB_URL or {DEFAULT_HUB})"
    )
    flags.add_argument(
        "--hub-ca",
        type=Path,
        help="site CA certificate to pin for HTTPS (default $APPLIANCE_HUB_CA)",
    )
    return flags


def _session_extra(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except (OSError, ValueError):
        return {}


def hub_url(args: argparse.Namespace) -> str:
    saved = _session_extra(default_session_file()).get("hub_url")
    return str(args.hub or os.environ.get("APPLIANCE_HUB_URL") or saved or DEFAULT_HUB)


def hub_ca(args: argparse.Namespace) -> Path | None:
    given = args.hub_ca or os.environ.get("APPLIANCE_HUB_CA")
    saved = _session_extra(default_session_file()).get("hub_ca")
    value = given or saved
    return Path(value) if value else None


def verify_for(ca: Path | None) -> Any:
    if ca is None:
        return True

    return client_ssl_context(ca)


def anonymous_client(args: argparse.Namespace) -> HubClient:
    return HubClient(hub_url(args), verify=verify_for(hub_ca(args)))


def user_client(args: argparse.Namespace) -> HubClient:
    """A client acting as the signed-in user (see ``appliance login``)."""
    credentials = UserCredentials.load(default_session_file())
    return HubClient(hub_url(args), credentials=credentials, verify=verify_for(hub_ca(args)))


def save_session(url: str, ca: Path | None, tokens: dict[str, Any]) -> Path:
    path = default_session_file()
    UserCredentials(
        tokens["access_token"],
        tokens["refresh_token"],
        url,
        hub_ca=str(ca.resolve()) if ca else None,
    ).save(path)
    return path
