"""Where releases live on a host, and which one runs.

Under the installation root (``<prefix>/opt/appliance``)::

    releases/<release>-<digest>/   an unpacked, verified archive
    venvs/<release>-<digest>/      its virtual environment (complete once .appliance-release is in)
    venv -> venvs/...              the running release: what the units start
    venv.previous -> venvs/...     the one before it
    upgrade.json                   the journal of an upgrade in progress

Only the two linked releases are kept: once an upgrade or a rollback has ended, the others
(and unpacks cut short) are removed, since each holds a virtual environment of up to 2 GB.

``venv`` is a symbolic link switched by rename, so the switch is atomic and a virtual
environment never moves (its scripts name their own path). A ``venv`` folder from an
install before this layout is adopted: moved under ``venvs/`` and linked, so its scripts,
which name ``venv/bin/python``, reach it through the link while it runs.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from appliance.cli.upgrade.errors import UpgradeError
from appliance.fsutil import fsync_dir

RELEASE_MARKER: Final = ".appliance-release"
"""In a virtual environment: ``<release> <SHA256SUMS digest>``, written when it is complete."""


@dataclass(frozen=True)
class Installation:
    root: Path

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    @property
    def venvs(self) -> Path:
        return self.root / "venvs"

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def previous(self) -> Path:
        return self.root / "venv.previous"

    @property
    def journal(self) -> Path:
        return self.root / "upgrade.json"

    def current(self) -> Path | None:
        """The running release's virtual environment (resolved), or None on a fresh host."""
        if not self.venv.exists():
            return None
        if not self.venv.is_symlink():
            self._adopt()
        return self.venv.resolve()

    def _adopt(self) -> None:
        """Move a ``venv`` folder of the earlier layout under ``venvs/`` and link it."""
        marker = installed_release(self.venv)
        self.venvs.mkdir(parents=True, exist_ok=True)
        target = self.venvs / (slot_name(marker) if marker else "adopted")
        if target.exists():
            raise UpgradeError(f"cannot adopt {self.venv}: {target} exists")
        self.venv.rename(target)
        point(self.venv, target)

    def prune(self) -> list[Path]:
        """Remove what neither ``venv`` nor ``venv.previous`` runs from ``releases/`` and
        ``venvs/`` (slots share their names), unpacks cut short included; what was removed."""
        keep = {link.resolve().name for link in (self.venv, self.previous) if link.is_symlink()}
        removed: list[Path] = []
        for folder in (self.releases, self.venvs):
            if not folder.is_dir():
                continue
            for slot in sorted(folder.iterdir()):
                if slot.name in keep:
                    continue
                if slot.is_dir() and not slot.is_symlink():
                    shutil.rmtree(slot)
                else:
                    slot.unlink()
                removed.append(slot)
        return removed

    def switch(self, to: Path, previous: Path | None) -> None:
        """``venv`` → ``to`` and ``venv.previous`` → ``previous`` (each by one rename)."""
        if previous is None:
            self.previous.unlink(missing_ok=True)
        else:
            point(self.previous, previous)
        point(self.venv, to)


def installed_release(venv: Path) -> str | None:
    """What a complete virtual environment holds (``<release> <digest>``), else None."""
    try:
        return (venv / RELEASE_MARKER).read_text().strip() or None
    except OSError:
        return None


def slot_name(marker: str) -> str:
    """The folder of a release under ``releases/`` and ``venvs/``: ``<release>-<digest[:12]>``
    (the playbooks name it the same way)."""
    release, _, digest = marker.partition(" ")
    return f"{release}-{digest[:12]}"


def point(link: Path, target: Path) -> None:
    """Make ``link`` a symbolic link to ``target``, replacing what was there in one rename."""
    spare = link.with_name(f".{link.name}.new")
    spare.unlink(missing_ok=True)
    spare.symlink_to(target)
    os.replace(spare, link)
    fsync_dir(link.parent)
