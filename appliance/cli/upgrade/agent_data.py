"""What an upgrade keeps safe on an agent host: its data directory (identity, install
slots, keys, outbox, bundles), copied aside with the agent stopped and put back when the
new release fails.

The new release migrates the state itself when it starts (:mod:`agent.state_schema`), so
there is no separate migration step: a migration that fails leaves the agent unhealthy,
and the rollback puts the state back as the old release wrote it (an old release refuses
state a newer one wrote, so this is what lets it start again).

A copy, not an archive: a rollback is one rename and a copy of small files. Sealed
bundles are never written in place once installed (a new version is a new file, moved in
by rename), nor are fetched release archives (``upgrades/``, downloaded aside and renamed
in; ~300 MB each), so under those folders the copy is hard links, which costs no space;
every other file is copied, since SQLite and JSON state are. The last :data:`KEEP` copies stay
beside the data directory (``<data>.backups/``); older ones are removed.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from appliance.cli.upgrade.errors import RollbackError, UpgradeError
from appliance.clock import utcnow
from appliance.fsutil import own_like, unused_path
from appliance.wire.upgrades import ARCHIVES

KEEP: Final = 2
STAMP: Final = re.compile(r"\d{8}T\d{12}Z")
"""When a backup was made (UTC, to the microsecond): in its name, which sorts by it."""
LINKED: Final = ("bundles", ARCHIVES)
"""The folders of the data directory whose files are immutable once in (hard-linked)."""


@dataclass(frozen=True)
class AgentData:
    data_dir: Path

    @property
    def backups(self) -> Path:
        return self.data_dir.with_name(f"{self.data_dir.name}.backups")

    def backup(self, release: str) -> Path:
        """A copy of the stopped agent's data directory; its path."""
        self.backups.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = utcnow().strftime("%Y%m%dT%H%M%S%fZ")
        target = unused_path(self.backups / f"before-{release}-{stamp}")
        partial = target.with_name(f".{target.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            _copy(self.data_dir, partial)
            partial.rename(target)
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            raise UpgradeError(f"could not back up {self.data_dir}: {exc}") from exc
        self._prune()
        return target

    def migrate(self, venv: Path) -> None:
        """Nothing before the start: the new release migrates its state as it starts."""

    def restore(self, backup: Path) -> Path:
        """Put ``backup`` back as the data directory; what it replaces is kept beside it
        (``<data>.failed-<time>``, its path returned). The backup itself stays."""
        data = self.data_dir
        kept = unused_path(
            data.with_name(f"{data.name}.failed-{utcnow().strftime('%Y%m%dT%H%M%SZ')}")
        )
        partial = data.with_name(f".{data.name}.restoring")
        try:
            shutil.rmtree(partial, ignore_errors=True)
            _copy(backup, partial)
            if data.exists():
                data.rename(kept)
            partial.rename(data)
        except OSError as exc:
            raise RollbackError(
                f"could not restore {backup} into {data}: {exc}",
                hint=f"what the new release left is in {kept if kept.exists() else data}",
            ) from exc
        return kept

    def _prune(self) -> None:
        done = sorted(
            (p for p in self.backups.iterdir() if STAMP.search(p.name)),
            key=lambda p: STAMP.findall(p.name)[-1],
        )
        for old in done[:-KEEP]:
            shutil.rmtree(old, ignore_errors=True)


def _copy(source: Path, target: Path) -> None:
    """``source`` to ``target`` with modes and times, owned as ``source`` is; files under
    :data:`LINKED` hard-linked."""
    linked = [source / name for name in LINKED]

    def copy_one(src: str, dst: str) -> object:
        if any(Path(src).is_relative_to(folder) for folder in linked):
            os.link(src, dst, follow_symlinks=False)
            return dst
        return shutil.copy2(src, dst, follow_symlinks=False)

    shutil.copytree(source, target, symlinks=True, copy_function=copy_one)
    own_like(target, source)
