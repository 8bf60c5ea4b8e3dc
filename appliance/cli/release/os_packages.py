"""Debian packages an archive carries for hosts that lack them: ``python3.11-venv`` and
everything it depends on, so a Debian 12 host without it is installed offline too (the playbook
installs them from the archive's own apt index, ``ansible/roles/common/tasks/
os_packages.yml``). Fetched on a Debian 12 build machine with ``apt-get download``; their
integrity on the host comes from the archive's signed checksums, like every file's."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from appliance.errors import ApplianceError

DEBIAN_12 = "debian-12"
"""The folder (and release) the carried packages are for."""
PACKAGES: tuple[str, ...] = (
    "python3.11-venv",
    "python3-pip-whl",
    "python3-setuptools-whl",
    "python3-distutils",
    "python3-lib2to3",
    # python3.11-venv wants python3.11 of its own version: a host on an older point
    # release is brought to it from these.
    "python3.11",
    "python3.11-minimal",
    "libpython3.11-stdlib",
    "libpython3.11-minimal",
)
INDEX = "Packages"


class OsPackagesError(ApplianceError):
    """The Debian packages could not be fetched or indexed."""


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise OsPackagesError(
            f"{name} is not installed", hint=f"run this on Debian 12 with {package} installed"
        )
    return found


def closure(names: tuple[str, ...] = PACKAGES) -> list[str]:
    """``names`` and everything they depend on, recursively (pre-depends included, not
    recommends): what a minimal host may lack (a minimal Debian 12 lacked ca-certificates,
    which python3-pip-whl needs). apt on the host installs only what is missing or older."""
    listed = subprocess.run(
        [
            _tool("apt-cache", "apt"),
            "depends",
            "--recurse",
            *("--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks"),
            *("--no-replaces", "--no-enhances"),
            *names,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode != 0:
        raise OsPackagesError(f"apt-cache depends failed: {listed.stderr.strip()[-500:]}")
    found = {
        line.strip()
        for line in listed.stdout.splitlines()
        if line and not line[0].isspace() and not line.startswith("<")
    }
    return sorted(found | set(names))


def fetch(dest: Path, names: tuple[str, ...] = PACKAGES) -> list[Path]:
    """``apt-get download`` the packages and their :func:`closure` into ``dest`` (this
    machine's apt sources, which must be Debian 12's); the .deb files there afterwards."""
    dest.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [_tool("apt-get", "apt"), "download", *closure(names)],
        cwd=dest,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise OsPackagesError(
            f"apt-get download failed (exit {done.returncode}): {done.stderr.strip()[-500:]}",
            hint="run 'apt-get update' first; the build machine must be Debian 12",
        )
    return sorted(dest.glob("*.deb"))


def carried(folder: Path) -> list[tuple[str, Path | bytes]]:
    """Archive members for the .deb files in ``folder``: each file, and an apt index of
    them (``Packages``), under ``os-packages/debian-12/``."""
    debs = sorted(folder.glob("*.deb"))
    if not debs:
        raise OsPackagesError(
            f"no .deb files in {folder}", hint="fetch them with 'appliance-build os-packages'"
        )
    names = {deb.name.split("_", 1)[0] for deb in debs}
    missing = [name for name in PACKAGES if name not in names]
    if missing:
        raise OsPackagesError(
            f"{folder} lacks {', '.join(missing)}",
            hint="fetch them with 'appliance-build os-packages'",
        )
    index = subprocess.run(
        [_tool("dpkg-scanpackages", "dpkg-dev"), "--multiversion", ".", "/dev/null"],
        cwd=folder,
        capture_output=True,
        check=False,
    )
    if index.returncode != 0:
        raise OsPackagesError(f"dpkg-scanpackages failed: {index.stderr.decode()[-500:]}")
    prefix = f"os-packages/{DEBIAN_12}"
    return [(f"{prefix}/{deb.name}", deb) for deb in debs] + [(f"{prefix}/{INDEX}", index.stdout)]
