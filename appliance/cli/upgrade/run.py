"""The upgrade itself, and its way back."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from appliance.cli.upgrade.errors import RollbackError, UpgradeError
from appliance.cli.upgrade.install import Release, build_venv, unpack
from appliance.cli.upgrade.journal import Journal, Phase
from appliance.cli.upgrade.layout import Installation, installed_release
from appliance.cli.upgrade.services import HealthCheck, Services
from appliance.errors import ApplianceError

_FAILURES = (ApplianceError, OSError, subprocess.SubprocessError)
"""What a step can fail with; anything else is a defect and propagates (the journal stays,
and ``--recover`` puts the old release back)."""


class HostData(Protocol):
    """What a host keeps (a hub's database and files, an agent's state): backed up with
    the services stopped, migrated by the new release, put back when it fails."""

    def backup(self, release: str) -> Path: ...

    def migrate(self, venv: Path) -> None: ...

    def restore(self, backup: Path) -> Path: ...


@dataclass(frozen=True)
class HostUpgrade:
    """One host's upgrade: its installation, services, health check and data."""

    kind: str
    """``hub`` or ``agent``: the archives it takes."""
    installation: Installation
    services: Services
    health: HealthCheck
    data: HostData
    python: str
    """The host's Python 3.11, for new virtual environments."""
    say: Callable[[str], None] = print

    def upgrade(self, archive: Path, public_key: Path) -> str:
        """Install ``archive`` and make it the running release, or leave the old one running."""
        self._refuse_when_cut_off()
        release = unpack(archive, public_key, self.installation)
        if release.kind != self.kind:
            raise UpgradeError(
                f"{release.name} is a release for {release.kind} hosts; this is a {self.kind} host",
                hint=f"give it the appliance-{self.kind} archive of the release",
            )
        self.say(f"verified {release.name} ({release.digest[:12]})")
        old = self.installation.current()
        new = build_venv(release, self.installation, self.python)
        self.say(f"installed beside the running release: {new}")
        if old == new:
            return f"{release.name} is already the running release"
        if old is None:
            return self._first(release, new)
        journal = Journal.begin(
            self.installation.journal,
            release.name,
            old,
            new,
            self.installation.previous.resolve() if self.installation.previous.exists() else None,
        )
        try:
            self.services.stop()
            self.say("services stopped")
            backup = self.data.backup(release.name)
            self.say(f"backed up to {backup}")
            journal = journal.at(self.installation.journal, Phase.MIGRATING, backup=str(backup))
            self.data.migrate(new)
            self.say("data migrated")
            journal = journal.at(self.installation.journal, Phase.SWITCHED)
            self.installation.switch(new, old)
            self.services.start()
            self.health.wait(release.version)
        except _FAILURES as exc:
            self.say(f"the upgrade to {release.name} failed: {exc}")
            back = self.roll_back(journal)
            raise UpgradeError(
                f"the upgrade to {release.name} failed and was rolled back: {exc}",
                hint=back,
            ) from exc
        self.installation.journal.unlink()
        self._prune()
        return f"upgraded to {release.name}; the release before it is venv.previous"

    def recover(self) -> str:
        """Roll back an upgrade that was cut off (its journal is still there)."""
        journal = Journal.read(self.installation.journal)
        if journal is None:
            return "no upgrade was cut off: nothing to recover"
        self.say(f"an upgrade to {journal.release} was cut off while {journal.phase}")
        return self.roll_back(journal)

    def roll_back(self, journal: Journal) -> str:
        """Put the old release, and the data it had, back; what was done, in words."""
        done: list[str] = []
        try:
            self.services.stop()
        except UpgradeError as exc:
            self.say(f"(stopping: {exc})")
        if journal.phase in (Phase.MIGRATING, Phase.SWITCHED) and journal.backup:
            kept = self.data.restore(Path(journal.backup))
            done.append(f"data restored from {journal.backup} (the new release's kept in {kept})")
        old = Path(journal.old)
        previous = None if journal.old_previous is None else Path(journal.old_previous)
        self.installation.switch(old, previous)
        done.append(f"venv is {old.name} again")
        try:
            self.services.start()
            self.health.wait(_version(old))
        except _FAILURES as exc:
            raise RollbackError(
                f"rolled back ({'; '.join(done)}) but the old release is not healthy: {exc}",
                hint="run 'appliance upgrade --recover' again once the cause is fixed",
            ) from exc
        self.installation.journal.unlink(missing_ok=True)
        done.append("healthy")
        self._prune()
        self.say("rolled back: " + "; ".join(done))
        return "; ".join(done)

    def _first(self, release: Release, new: Path) -> str:
        """A host with no release yet: migrate (or create) the data, link, start, check."""
        self.data.migrate(new)
        self.installation.switch(new, None)
        self.services.start()
        self.health.wait(release.version)
        self._prune()
        return f"installed {release.name}"

    def _prune(self) -> None:
        """Free the disk of releases no link runs; a folder that will not go is said, not
        fatal (the upgrade itself is done)."""
        try:
            removed = self.installation.prune()
        except OSError as exc:
            self.say(f"(could not remove an old release: {exc})")
            return
        if removed:
            self.say("removed releases no longer linked: " + ", ".join(p.name for p in removed))

    def _refuse_when_cut_off(self) -> None:
        journal = Journal.read(self.installation.journal)
        if journal is not None:
            raise UpgradeError(
                f"an upgrade to {journal.release} was cut off while {journal.phase} "
                f"(started {journal.started_at}); nothing is changed until it is rolled back",
                hint="run 'appliance upgrade --recover'",
            )


def _version(venv: Path) -> str | None:
    """The version a release's virtual environment holds (None if it never said)."""
    marker = installed_release(venv)
    return marker.split()[0].rsplit("-", 1)[-1] if marker else None
