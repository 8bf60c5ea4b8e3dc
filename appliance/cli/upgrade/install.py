"""A release beside the running one: the archive unpacked and checked, its virtual
environment built from its own wheels, offline."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from appliance.cli.upgrade.errors import UpgradeError
from appliance.cli.upgrade.layout import (
    RELEASE_MARKER,
    Installation,
    installed_release,
    slot_name,
)
from appliance.cli.upgrade.process import run_step
from appliance.fsutil import atomic_write_bytes
from appliance.security.release_archives import ArchiveRefused, load_public_key, verify_tree

PIP_ENVIRONMENT = {
    "PIP_NO_INDEX": "1",
    "PIP_CONFIG_FILE": "/dev/null",
    "PIP_FIND_LINKS": "wheels",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}
"""As the playbooks install (roles/common/vars): the release's wheels only, whatever the
host's pip configuration says."""


@dataclass(frozen=True)
class Release:
    """An unpacked archive whose every file matched its signed ``SHA256SUMS``."""

    folder: Path
    name: str
    """``appliance-<kind>-<version>``."""
    kind: str
    version: str
    digest: str
    """SHA-256 of ``SHA256SUMS``: tells two builds of one version apart."""
    manifest: dict[str, Any]

    @property
    def marker(self) -> str:
        return f"{self.name} {self.digest}"

    @property
    def slot(self) -> str:
        """The folder name of its unpacked copy and of its virtual environment."""
        return slot_name(self.marker)


def unpack(archive: Path, public_key: Path, installation: Installation) -> Release:
    """Unpack ``archive`` beside the installation's releases and check every file there.

    The check runs on the unpacked files (what will be installed), not on the archive read
    before: a file swapped in between would otherwise go in unchecked. Unsafe members
    (links, devices, absolute paths, paths up) are refused first (:func:`extract_release`).
    """
    public = load_public_key(public_key)
    installation.releases.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=installation.releases, prefix=".unpack-"))
    try:
        try:
            with tarfile.open(archive) as tar:
                extract_release(tar, work)
        except (OSError, tarfile.TarError) as exc:
            raise UpgradeError(f"cannot unpack {archive}: {exc}") from exc
        tops = [entry for entry in work.iterdir()]
        if len(tops) != 1 or not tops[0].is_dir():
            raise UpgradeError(f"{archive} is not a release: it must hold one folder")
        try:
            checked = verify_tree(tops[0], public)
        except ArchiveRefused as exc:
            raise UpgradeError(f"refused {archive}: {exc}") from exc
        manifest = json.loads((tops[0] / "MANIFEST.json").read_text())
        release = Release(
            folder=installation.releases / f"{checked.top}-{checked.sums_sha256[:12]}",
            name=checked.top,
            kind=str(manifest["kind"]),
            version=str(manifest["version"]),
            digest=checked.sums_sha256,
            manifest=manifest,
        )
        if not release.folder.exists():
            tops[0].rename(release.folder)
        return release
    finally:
        shutil.rmtree(work, ignore_errors=True)


def extract_release(tar: tarfile.TarFile, dest: Path) -> None:
    """Only what a release archive holds: folders and regular files, each under ``dest``,
    without set-id bits or group/other write, owned by whoever extracts; anything else
    refuses the whole archive before a byte is written. Python's ``filter="data"`` is
    applied too where it exists: from 3.11.4, and Debian 12 ships 3.11.2, whose
    ``extractall`` has no ``filter`` (an upgrade on such a host died with a TypeError)."""
    members = []
    for member in tar.getmembers():
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts:
            raise tarfile.TarError(f"{member.name!r} points outside the archive's folder")
        if not (member.isfile() or member.isdir()):
            raise tarfile.TarError(f"{member.name!r} is not a plain file or folder")
        member.mode &= 0o755
        member.uid, member.gid, member.uname, member.gname = os.getuid(), os.getgid(), "", ""
        members.append(member)
    extra: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    tar.extractall(dest, members=members, numeric_owner=True, **extra)


def build_venv(release: Release, installation: Installation, python: str) -> Path:
    """The release's virtual environment under ``venvs/``, built unless already complete.

    It is built where it will stay (a virtual environment's scripts name their path) and
    counts as complete only once :data:`RELEASE_MARKER` is written, last: a half-built one
    left by a failure is removed and built again.
    """
    venv = installation.venvs / release.slot
    if installed_release(venv) == release.marker:
        return venv
    if venv.exists():
        shutil.rmtree(venv)
    installation.venvs.mkdir(parents=True, exist_ok=True)
    _run([python, "-m", "venv", str(venv)], "create the virtual environment", release.folder)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-index", "--quiet"]
    pip += ["--no-cache-dir", "--find-links", "wheels", "--require-hashes"]
    for role in release.manifest.get("requirements", {}).values():
        _run([*pip, "-r", role["with_deps"]], f"install {role['with_deps']}", release.folder)
        if role.get("no_deps"):
            _run([*pip, "--no-deps", "-r", role["no_deps"]], "install", release.folder)
    atomic_write_bytes(venv / RELEASE_MARKER, f"{release.marker}\n".encode())
    return venv


def _run(argv: list[str], what: str, cwd: Path) -> None:
    run_step(argv, what, cwd=cwd, env={**os.environ, **PIP_ENVIRONMENT})


def archive_kind(archive: Path) -> str:
    """What the archive's manifest says it installs (``hub`` or ``agent``), read before its
    signature is checked: only to choose the host's paths; :func:`unpack` checks it."""
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                top_level = member.isfile() and member.name.count("/") == 1
                if top_level and member.name.endswith("/MANIFEST.json"):
                    read = tar.extractfile(member)
                    kind = json.loads(read.read()).get("kind") if read else None
                    if kind in ("hub", "agent"):
                        return str(kind)
                    break
    except (OSError, tarfile.TarError, ValueError) as exc:
        raise UpgradeError(f"cannot read {archive}: {exc}") from exc
    raise UpgradeError(
        f"{archive} names no hub or agent release in its MANIFEST.json",
        hint="give the appliance-hub-… or appliance-agent-… archive of a release",
    )
