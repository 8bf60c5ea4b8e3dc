"""An agent upgrading its own host when the hub's agent upgrade asks it to.

Each sync round the hub's assignments may name a release (``software``). When it is not
the release this agent runs, and the agent has not already failed to run it, the agent
fetches the archive from the hub into ``<data>/upgrades/``, checks its SHA-256 against
what the hub said, and asks its host's upgrader for it by writing
``upgrade-request.json`` (:mod:`appliance.wire.upgrades`). The upgrader runs as root,
apart from the agent: systemd's ``appliance-agent-upgrade.path`` starts
``appliance upgrade --request`` when the file appears (or, without systemd, the agent
starts ``APPLIANCE_UPGRADE_COMMAND`` itself, in a session of its own). It checks the
archive against the host's pinned release key, stops this agent, installs, starts the
new release and health-checks it, or puts this release back, and answers with
``upgrade-result.json``.

The agent never runs the upgrade itself and never names a file outside its data
directory; what it fetched counts for nothing until the release key's signature is
checked by root. A failed result for a version is remembered and said in every
heartbeat (``upgrade_failed``), which halts the hub's upgrade; that version is not asked
for again. While a request waits, no other is made.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import msgspec

from appliance import __version__
from appliance.client.hub import HubClient
from appliance.errors import ApplianceError
from appliance.fsutil import atomic_write_bytes, sha256_file
from appliance.wire.fleet import SoftwareTarget, UpgradeFailure
from appliance.wire.upgrades import (
    ARCHIVES,
    REQUEST_FILE,
    RESULT_FILE,
    UpgradeRequest,
    UpgradeResult,
)

log = logging.getLogger(__name__)


class SelfUpgrade:
    def __init__(self, data_dir: Path, command: str | None = None) -> None:
        self.data_dir = data_dir
        self.command = command
        """``APPLIANCE_UPGRADE_COMMAND``: started when a request is written (hosts without
        systemd's path unit); its environment names the request file."""
        self.failed: UpgradeFailure | None = None
        """The last upgrade that failed here (said in heartbeats)."""
        self.problem: str | None = None
        """Why the release asked for is not being installed, if something stops it."""

    @property
    def request_file(self) -> Path:
        return self.data_dir / REQUEST_FILE

    @property
    def upgrading(self) -> str | None:
        """The release the host's upgrader is installing (its request is still there)."""
        try:
            request = msgspec.json.decode(self.request_file.read_bytes(), type=UpgradeRequest)
        except FileNotFoundError:
            return None
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return "unknown"
        return request.version

    def consider(self, client: HubClient, target: SoftwareTarget | None) -> None:
        """One sync round's look at the release the hub asks for."""
        self._read_result()
        if target is None or target.version == __version__:
            self.problem = None
            return
        if self.failed is not None and self.failed.version == target.version:
            return  # it failed here once; the hub halts and asks no more
        if self.request_file.exists():
            return  # the upgrader has it, or will
        try:
            name = self._fetch(client, target)
        except ApplianceError as exc:
            self.problem = f"cannot fetch agent release {target.version}: {exc}"
            log.warning("%s", self.problem)
            return
        request = UpgradeRequest(
            version=target.version, archive=name, archive_sha256=target.archive_sha256
        )
        atomic_write_bytes(self.request_file, msgspec.json.encode(request), mode=0o644)
        log.warning(
            "the hub asks for agent release %s (this is %s): upgrade requested",
            target.version,
            __version__,
        )
        self.problem = None
        if self.command:
            self._start_command()

    def _fetch(self, client: HubClient, target: SoftwareTarget) -> str:
        folder = self.data_dir / ARCHIVES
        folder.mkdir(mode=0o755, parents=True, exist_ok=True)
        name = f"appliance-agent-{target.version}.tar"
        path = folder / name
        digest = sha256_file(path)[0] if path.exists() else None
        if digest != target.archive_sha256:  # not fetched yet, or cut off, or another build
            client.download_agent_release(target.version, path)
            digest = sha256_file(path)[0]
        if digest != target.archive_sha256:
            path.unlink(missing_ok=True)
            raise ApplianceError(
                f"the archive's SHA-256 is {digest[:12]}, not the {target.archive_sha256[:12]} "
                "the hub named"
            )
        for other in folder.glob("appliance-agent-*.tar"):
            if other.name != name:
                other.unlink(missing_ok=True)  # one archive kept at a time
        return name

    def _start_command(self) -> None:
        assert self.command is not None
        subprocess.Popen(
            ["sh", "-c", self.command],
            env={**os.environ, "APPLIANCE_UPGRADE_REQUEST": str(self.request_file)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # it stops this agent; it must outlive it
        )

    def _read_result(self) -> None:
        try:
            result = msgspec.json.decode(
                (self.data_dir / RESULT_FILE).read_bytes(), type=UpgradeResult
            )
        except FileNotFoundError:
            return
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("cannot read %s: %s", RESULT_FILE, exc)
            return
        if not result.ok and result.version != __version__:
            if self.failed is None or self.failed.version != result.version:
                log.error(
                    "the upgrade to %s failed and was rolled back: %s", result.version, result.said
                )
            self.failed = UpgradeFailure(version=result.version, reason=result.said[:500])
