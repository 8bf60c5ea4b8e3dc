"""What an upgrade keeps safe on a hub host: its data, backed up with the hub stopped,
migrated by the new release, and put back when the new release fails."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from appliance.cli.upgrade.errors import RollbackError
from appliance.cli.upgrade.process import run_step
from appliance.clock import utcnow
from appliance.errors import ApplianceError
from appliance.fsutil import own_like, unused_path
from appliance.settings import HubSettings
from hub.backup import backup_hub, restore_hub
from hub.backup.database import database_kind, set_aside_postgres


@dataclass(frozen=True)
class HubData:
    settings: HubSettings
    environment: dict[str, str]
    """The hub's ``APPLIANCE_*`` settings (its unit's environment file), for the new
    release's commands."""

    def backup(self, release: str) -> Path:
        """A backup of the stopped hub in its backup folder; its path."""
        folder = self.settings.resolved_backup_dir
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
        return backup_hub(self.settings, folder / f"before-{release}-{stamp}.tar").archive

    def migrate(self, venv: Path) -> None:
        """Bring the database to the schema of the release in ``venv``, with its own code."""
        argv = [str(venv / "bin" / "appliance"), "hub", "db", "upgrade", "--no-backup"]
        argv += ["--data-dir", str(self.settings.data_dir)]
        if self.settings.database_url:
            argv += ["--database-url", self.settings.database_url]
        run_step(argv, "migrate with the new release", env={**os.environ, **self.environment})

    def restore(self, backup: Path) -> Path:
        """Put ``backup`` back as the data directory (and, for PostgreSQL, as the hub's
        records); what it replaces is kept: the directory beside it
        (``<data>.failed-<time>``, its path returned), a PostgreSQL hub's records in the
        schema ``failed_<time>`` of the same database."""
        url = self.settings.resolved_database_url
        postgres = database_kind(url) != "sqlite"
        data = self.settings.data_dir
        stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
        kept = unused_path(data.with_name(f"{data.name}.failed-{stamp}"))
        records = f"schema failed_{stamp.lower()} and " if postgres else ""
        try:
            if postgres:
                set_aside_postgres(url, f"failed_{stamp.lower()}")
            if data.exists():
                data.rename(kept)
            restore_hub(backup, data, database_url=url if postgres else None)
            own_like(data, kept)
        except (ApplianceError, OSError) as exc:
            raise RollbackError(
                f"could not restore {backup} into {data}: {exc}",
                hint=f"the records and files the new release left are in {records}{kept}",
            ) from exc
        return kept
