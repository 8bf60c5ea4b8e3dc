"""Verified bundles on the agent's disk, and which one is current.

Layout under the agent's data directory::

    bundles/<name>/<version>/   a verified, unpacked bundle (never changed once there)
    state.json                  {"current": {"<name>": <version>}, "previous": {...}}
    staging/                    work folders for downloads and unpacking

``state.json`` is replaced atomically, so after a crash it names either the old
or the new bundle, both of which are complete on disk. The current and the
previous version of each model are kept; older ones are removed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from appliance.fsutil import atomic_write_bytes, fsync_dir


class BundleStore:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir
        self.bundles = data_dir / "bundles"
        self.staging = data_dir / "staging"
        self.state_file = data_dir / "state.json"
        for folder in (self.bundles, self.staging):
            folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.staging, ignore_errors=True)  # leftovers of an interrupted install
        self.staging.mkdir(parents=True, exist_ok=True)

    def new_staging_dir(self) -> Path:
        return Path(tempfile.mkdtemp(dir=self.staging))

    def _state(self) -> dict[str, dict[str, int]]:
        try:
            state = json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {"current": {}, "previous": {}}
        return {"current": state.get("current", {}), "previous": state.get("previous", {})}

    def current(self) -> dict[str, int]:
        return dict(self._state()["current"])

    def previous(self) -> dict[str, int]:
        return dict(self._state()["previous"])

    def path(self, name: str, version: int) -> Path:
        return self.bundles / name / str(version)

    def place(self, verified: Path, name: str, version: int) -> Path:
        """Move a verified staging folder into the store (same file system: a rename)."""
        final = self.path(name, version)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            shutil.rmtree(final)
        os.replace(verified, final)
        fsync_dir(final.parent)
        return final

    def mark_current(self, name: str, version: int) -> None:
        state = self._state()
        old = state["current"].get(name)
        if old is not None and old != version:
            state["previous"][name] = old
        state["current"][name] = version
        atomic_write_bytes(self.state_file, json.dumps(state, indent=2).encode())
        keep = {version, state["previous"].get(name)}
        for folder in (self.bundles / name).iterdir():
            if folder.name.isdigit() and int(folder.name) not in keep:
                shutil.rmtree(folder, ignore_errors=True)
