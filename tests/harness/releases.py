"""Release archives of this tree, and of edited copies of it, for upgrade tests.

A copy holds the files git would commit (tracked and untracked, not ignored), so what is
being worked on goes in; edits are (path, old text, new text) replacements that must each
apply once, plus whole new files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from appliance.cli.release.build import Entry, write_archive
from appliance.cli.release.os_packages import DEBIAN_12, fetch
from appliance.errors import ApplianceError
from appliance.security.keys import KeyPair

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "appliance-build" / "wheels"
OS_PACKAGES = ROOT / ".cache" / "appliance-build" / "os-packages" / DEBIAN_12
BASE_PYTHON = (
    Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
)


def cached_os_packages() -> Path | None:
    """The Debian 12 packages archives carry (python3.11-venv and its dependencies),
    fetched once with apt into the build cache; None where apt cannot fetch them."""
    if not list(OS_PACKAGES.glob("python3.11-venv_*.deb")):
        try:
            fetch(OS_PACKAGES)
        except ApplianceError as exc:
            print(f"archives without Debian packages: {exc}")
            return None
    return OS_PACKAGES


def tree_copy(dest: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (entry.decode() for entry in listed)):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def edited(
    dest: Path,
    version: str,
    replace: tuple[tuple[str, str, str], ...] = (),
    add: Mapping[str, str] | None = None,
) -> Path:
    """A copy of this tree released as ``version``, with ``replace`` and ``add`` applied."""
    tree = tree_copy(dest)
    bumps = (
        ("pyproject.toml", 'version = "0.1.0"', f'version = "{version}"'),
        ("appliance/__init__.py", '__version__ = "0.1.0"', f'__version__ = "{version}"'),
    )
    for path, old, new in (*bumps, *replace):
        text = (tree / path).read_text()
        assert text.count(old) == 1, f"{old!r} is not once in {path}"
        (tree / path).write_text(text.replace(old, new))
    for path, text in (add or {}).items():
        (tree / path).write_text(text)
    return tree


def build_release(project: Path, out: Path, signing_key: Path, kind: str = "hub") -> Path:
    """``appliance-<kind>-<version>.tar`` of ``project`` in ``out``, signed with
    ``signing_key``."""
    before = set(out.glob(f"appliance-{kind}-*.tar"))
    subprocess.run(
        [
            *(sys.executable, "-m", "appliance.cli.release", "build", kind, "--out", str(out)),
            *("--signing-key", str(signing_key), "--wheel-cache", str(CACHE)),
            *("--prefer-offline", "--project", str(project)),
        ],
        check=True,
        timeout=900,
        capture_output=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": "1790000000"},
    )
    (made,) = set(out.glob(f"appliance-{kind}-*.tar")) - before
    return made


def build_archives(out: Path, *kinds: str, os_packages: Path | None = None) -> Path:
    """Archives of this tree (``kinds``) in ``out``, signed with a throw-away key (its
    public half, the returned path, in ``out/throwaway-key``)."""
    subprocess.run(
        [
            *(sys.executable, "-m", "appliance.cli.release", "build", *kinds, "--out", str(out)),
            *("--throwaway-key", "--wheel-cache", str(CACHE), "--prefer-offline"),
            *("--project", str(ROOT)),
            *(("--os-packages", str(os_packages)) if os_packages else ()),
        ],
        check=True,
        timeout=900,
        env={**os.environ, "SOURCE_DATE_EPOCH": "1790000000"},
    )
    return out / "throwaway-key" / "release.pub"


def release_key(out: Path) -> tuple[Path, Path]:
    """A release key pair (private, public) for the archives of one test."""
    subprocess.run(
        [sys.executable, "-m", "appliance.cli.release", "keygen", "--out", str(out)],
        check=True,
        capture_output=True,
    )
    return out / "release.key", out / "release.pub"


def signed_release(
    folder: Path, key: KeyPair, version: str, *, kind: str = "agent", extra: bytes = b""
) -> Path:
    """A small release archive in the build's format (files, MANIFEST.json, SHA256SUMS and
    its Ed25519 signature by ``key``), for tests of what takes or refuses releases;
    ``extra`` makes another build of the same version."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = json.dumps({"kind": kind, "version": version}).encode()
    entries = [
        Entry("MANIFEST.json", manifest),
        Entry("wheels/appliance-0-py3-none-any.whl", b"PK" + extra + bytes(range(256)) * 16),
    ]
    path = folder / f"appliance-{kind}-{version}-{hashlib.sha256(extra).hexdigest()[:6]}.tar"
    hashes = {entry.name: entry.sha256() for entry in entries}
    write_archive(path, f"appliance-{kind}-{version}", entries, hashes, key, 1_700_000_000)
    return path


def upgrade_argv(
    appliance_bin: Path,
    *args: str,
    root: Path,
    data: Path,
    serve: list[str],
    service: str,
    pidfile: Path,
    health_url: str,
    health_timeout: int,
) -> list[str]:
    """``appliance upgrade`` for a service a test runs in the background by a pid file,
    beside its install ``root``: start runs ``appliance SERVE…`` from the venv in place,
    appending to ``root/../SERVICE.log``; stop ends it (SIGTERM, SIGKILL after 30 s)."""
    log = shlex.quote(str(root.parent / f"{service}.log"))
    pid = shlex.quote(str(pidfile))
    start = (
        f"nohup {shlex.quote(str(root / 'venv/bin/appliance'))} {shlex.join(serve)} "
        f">> {log} 2>&1 & echo $! > {pid}"
    )
    stop = (
        f"if [ -f {pid} ]; then p=$(cat {pid}); kill $p 2>/dev/null; "
        "for i in $(seq 300); do kill -0 $p 2>/dev/null || break; sleep 0.1; done; "
        f"kill -9 $p 2>/dev/null; rm -f {pid}; fi; true"
    )
    return [
        str(appliance_bin),
        "upgrade",
        *args,
        *("--root", str(root), "--data-dir", str(data)),
        *("--env-file", str(root.parent / f"{service}.env"), "--python", str(BASE_PYTHON)),
        *("--stop-command", stop, "--start-command", start),
        *("--health-url", health_url, "--health-timeout", str(health_timeout)),
    ]
