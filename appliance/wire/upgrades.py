"""What an agent and its host's upgrader say to each other, as files in the agent's data
directory: the agent asks for an upgrade (``upgrade-request.json``, naming an archive it
fetched from the hub into ``upgrades/``), the upgrader (``appliance upgrade --request``,
run as root by systemd's ``appliance-agent-upgrade.path``, or by the command in
``APPLIANCE_UPGRADE_COMMAND``) answers with ``upgrade-result.json`` once the new release
runs, or the old one runs again."""

from __future__ import annotations

from typing import Final

import msgspec

REQUEST_FILE: Final = "upgrade-request.json"
RESULT_FILE: Final = "upgrade-result.json"
ARCHIVES: Final = "upgrades"
"""The folder of the agent's data directory that holds fetched release archives."""


class UpgradeRequest(msgspec.Struct, kw_only=True):
    version: str
    archive: str
    """The archive's file name in :data:`ARCHIVES` (never a path elsewhere)."""
    archive_sha256: str


class UpgradeResult(msgspec.Struct, kw_only=True):
    version: str
    ok: bool
    said: str
    """What the upgrade said: its last line, or why it failed and was rolled back."""
