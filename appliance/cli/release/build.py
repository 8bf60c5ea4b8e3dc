"""Build the offline installer archives.

For each archive kind (``hub``: the hub and training workers; ``agent``: edge
agents) the builder

1. builds the appliance wheel from a clean copy of the sources;
2. resolves each role's requirement set with pip (``pip install --dry-run
   --report``) from the appliance wheel's extra (``hub`` or ``agent``) under the
   given constraint files (this repository: ``constraints/cpu.txt``, the CPU build
   of torch); alibi-detect is resolved on its own with ``--no-deps``, as the
   Makefile installs it;
3. collects every file the resolver chose into a wheel cache (``pip download``
   with the resolver's hashes; a source distribution is turned into a wheel with
   ``pip wheel``) so the next build reuses it;
4. writes ``requirements-<role>.txt`` (every pin with ``--hash``) and, for the
   agent, ``requirements-agent-nodeps.txt``;
5. packs ``wheels/``, the lock files, the role's systemd units, configuration
   templates, the Ansible tree, ``MANIFEST.json`` and ``README.md`` into
   ``appliance-<kind>-<version>.tar`` with ``SHA256SUMS`` over every file and
   ``SHA256SUMS.sig``, an Ed25519 signature over it by the release key.

The tar is written in a fixed order with fixed owners and times, so the same
inputs give the same bytes. Wheels match the building interpreter (CPython 3.11
on Linux x86-64 here); build on the target platform.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from appliance.cli.release.os_packages import DEBIAN_12, carried
from appliance.errors import ApplianceError
from appliance.fsutil import sha256_bytes, sha256_file
from appliance.security.keys import KeyPair
from appliance.security.release_archives import SIG_NAME, SUMS_NAME, format_sums

ALIBI_DETECT = "0.13.0"
"""Installed without its dependencies, as the Makefile does (its metadata pins numpy<2)."""

APPLIANCE = "appliance"
PROJECT_PARTS = ("pyproject.toml", "README.md", "appliance", "hub", "agent", "tui")
"""What the appliance wheel is built from (a clean copy: no stale ``build/`` output)."""
SKIP_NAMES = frozenset({"__pycache__", ".ansible", ".pytest_cache", ".mypy_cache"})
SKIP_SUFFIXES = (".pyc", ".retry")

Log = Callable[[str], None]


class BuildError(ApplianceError):
    """The archive could not be built (pip failed, a file is missing, a hash differs)."""


@dataclass(frozen=True)
class RoleSpec:
    """What one role installs: the appliance with ``extras``, then ``no_deps`` alone."""

    name: str
    extras: tuple[str, ...]
    no_deps: tuple[str, ...] = ()


ROLES: dict[str, RoleSpec] = {
    "hub": RoleSpec("hub", ("hub",)),
    "worker": RoleSpec("worker", ("hub",)),
    "agent": RoleSpec("agent", ("agent",), (f"alibi-detect=={ALIBI_DETECT}",)),
}
KINDS: dict[str, tuple[str, ...]] = {"hub": ("hub", "worker"), "agent": ("agent",)}
"""Archive kind → the roles it installs."""


@dataclass(frozen=True)
class Resolved:
    """One distribution the resolver chose."""

    name: str
    version: str
    url: str
    sha256: str | None

    @property
    def filename(self) -> str:
        return unquote(urlparse(self.url).path.rsplit("/", 1)[-1])


@dataclass(frozen=True)
class Dist:
    """A wheel ready to pack: where it lies and its hash."""

    name: str
    version: str
    path: Path
    sha256: str

    @property
    def filename(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class RoleLock:
    """A role's pins: installed with dependencies, and those installed with ``--no-deps``."""

    role: str
    dists: tuple[Dist, ...]
    no_deps: tuple[Dist, ...] = ()


@dataclass(frozen=True)
class BuildOptions:
    """Inputs of a build."""

    project: Path
    """The repository root (``pyproject.toml``, the packages, ``systemd/``, ``ansible/``)."""
    out: Path
    """Where the archives are written."""
    key: KeyPair
    """The release signing key."""
    constraints: tuple[Path, ...] = ()
    """pip constraint files (``constraints/cpu.txt`` for the CPU build of torch)."""
    wheel_cache: Path | None = None
    """Keeps collected wheels between builds; ``None``: a temporary folder."""
    prefer_offline: bool = False
    """Resolve from the wheel cache alone first; go to the indexes only if that fails."""
    python: str = field(default_factory=lambda: sys.executable)
    """The interpreter whose pip resolves and downloads (it decides the wheel tags)."""
    source_date_epoch: int | None = None
    """Time stamp of every archive member; default ``$SOURCE_DATE_EPOCH`` or now."""
    os_packages: Path | None = None
    """A folder of Debian 12 packages (``python3.11-venv`` and what it needs) to carry for
    hosts without them (:mod:`appliance.cli.release.os_packages`); ``None``: none."""


@dataclass(frozen=True)
class BuiltArchive:
    """What :func:`build_archive` wrote."""

    kind: str
    path: Path
    size: int
    files: int
    wheels: int
    roles: tuple[str, ...]
    locks: tuple[RoleLock, ...]


def canonical_name(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


# -- pip ------------------------------------------------------------------------------------


def _pip(python: str, args: Sequence[str], *, env: dict[str, str] | None = None) -> str:
    """Run ``python -m pip ARGS``; return its output or raise :class:`BuildError` with it."""
    command = [python, "-m", "pip", "--disable-pip-version-check", *args]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if result.returncode != 0:
        noise = "is ignored: it is neither a file nor a directory"
        lines = [ln for ln in (result.stdout + result.stderr).splitlines() if noise not in ln]
        raise BuildError(
            f"pip {args[0]} failed (exit {result.returncode}):\n" + "\n".join(lines[-40:])
        )
    return result.stdout


def build_appliance_wheel(project: Path, dest: Path, python: str, epoch: int) -> Dist:
    """Build the appliance wheel from a clean copy of its sources into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="appliance-src-") as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        for part in PROJECT_PARTS:
            origin = project / part
            if origin.is_dir():
                shutil.copytree(
                    origin, source / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                )
            elif origin.is_file():
                shutil.copy2(origin, source / part)
            else:
                raise BuildError(f"{origin} is missing: is --project the repository root?")
        _pip(
            python,
            [
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "--quiet",
                "-w",
                f"{tmp}/out",
                str(source),
            ],
            env={"SOURCE_DATE_EPOCH": str(epoch)},
        )
        built = sorted(Path(tmp, "out").glob("appliance-*.whl"))
        if len(built) != 1:
            raise BuildError(f"expected one appliance wheel, got {[p.name for p in built]}")
        target = dest / built[0].name
        shutil.copy2(built[0], target)
    version = target.name.split("-")[1]
    return Dist(APPLIANCE, version, target, sha256_file(target)[0])


def _parse_report(path: Path) -> list[Resolved]:
    report = json.loads(path.read_text())
    chosen: list[Resolved] = []
    for item in report.get("install", []):
        metadata, info = item["metadata"], item["download_info"]
        hashes = info.get("archive_info", {}).get("hashes", {})
        sha256 = hashes.get("sha256")
        if sha256 is None:
            legacy = info.get("archive_info", {}).get("hash", "")
            sha256 = legacy.partition("=")[2] if legacy.startswith("sha256=") else None
        chosen.append(
            Resolved(canonical_name(metadata["name"]), metadata["version"], info["url"], sha256)
        )
    return chosen


def resolve(
    requirements: Sequence[str],
    options: BuildOptions,
    cache: Path,
    *,
    no_deps: bool = False,
    log: Log = print,
) -> list[Resolved]:
    """What pip would install for ``requirements`` into an empty environment."""
    base = ["install", "--dry-run", "--ignore-installed", "--quiet"]
    if no_deps:
        base.append("--no-deps")
    for constraint in options.constraints:
        base += ["-c", str(constraint)]
    attempts: list[list[str]] = []
    if options.prefer_offline:
        attempts.append(["--no-index", "--find-links", str(cache)])
    attempts.append(["--find-links", str(cache)])
    failure: BuildError | None = None
    for number, extra in enumerate(attempts):
        with tempfile.TemporaryDirectory(prefix="appliance-resolve-") as tmp:
            report = Path(tmp) / "report.json"
            try:
                _pip(options.python, [*base, *extra, "--report", str(report), *requirements])
            except BuildError as exc:
                failure = exc
                if number + 1 < len(attempts):
                    log("  the wheel cache does not hold everything; resolving from the indexes")
                continue
            return _parse_report(report)
    assert failure is not None
    raise failure


# -- collecting wheels ----------------------------------------------------------------------


def _local_path(url: str) -> Path | None:
    parsed = urlparse(url)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


def _matches(path: Path, sha256: str | None) -> bool:
    return path.is_file() and (sha256 is None or sha256_file(path)[0] == sha256)


def fetch(resolved: Iterable[Resolved], cache: Path, options: BuildOptions) -> list[Dist]:
    """Put every resolved file in ``cache`` (reusing what is there) and return the wheels."""
    cache.mkdir(parents=True, exist_ok=True)
    items = [item for item in resolved if item.name != APPLIANCE]
    missing: list[Resolved] = []
    for item in items:
        cached = cache / item.filename
        if _matches(cached, item.sha256):
            continue
        local = _local_path(item.url)
        if local is not None and local.is_file() and _matches(local, item.sha256):
            shutil.copy2(local, cached)
        else:
            missing.append(item)
    if missing:
        lines = [
            f"{item.name}=={item.version}"
            + (f" --hash=sha256:{item.sha256}" if item.sha256 else "")
            for item in missing
        ]
        with tempfile.TemporaryDirectory(prefix="appliance-fetch-") as tmp:
            wanted = Path(tmp) / "wanted.txt"
            wanted.write_text("\n".join(lines) + "\n")
            # Exact pins with the resolver's hashes: the very files it chose, nothing else.
            args = ["download", "--no-deps", "--quiet", "-d", str(cache), "-r", str(wanted)]
            _pip(options.python, args)
    dists: list[Dist] = []
    for item in items:
        path = cache / item.filename
        if not path.is_file():
            raise BuildError(f"pip did not fetch {item.filename} ({item.name}=={item.version})")
        if not item.filename.endswith(".whl"):
            path = _wheel_from_sdist(path, item, cache, options.python)
        digest = sha256_file(path)[0]
        if path.name == item.filename and item.sha256 and digest != item.sha256:
            raise BuildError(f"{path} does not have the hash the index announced")
        dists.append(Dist(item.name, item.version, path, digest))
    return dists


def _wheel_from_sdist(sdist: Path, item: Resolved, cache: Path, python: str) -> Path:
    """Build (once, then cached) a wheel from a source distribution."""
    folder = cache / "built" / sdist.name
    built = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    if not built:
        folder.mkdir(parents=True, exist_ok=True)
        _pip(python, ["wheel", "--no-deps", "--quiet", "-w", str(folder), str(sdist)])
        built = sorted(folder.glob("*.whl"))
    if len(built) != 1:
        raise BuildError(f"building {item.name}=={item.version} gave {[p.name for p in built]}")
    return built[0]


# -- lock files -----------------------------------------------------------------------------


def requirements_name(role: str, *, no_deps: bool = False) -> str:
    """``requirements-<role>.txt`` or ``requirements-<role>-nodeps.txt``."""
    return f"requirements-{role}{'-nodeps' if no_deps else ''}.txt"


def lock_text(role: str, dists: Sequence[Dist], *, no_deps: bool = False) -> str:
    """A pip requirements file pinning ``dists`` exactly, each with its SHA-256."""
    flag = " --no-deps" if no_deps else ""
    lines = [
        f"# Role {role}: exact pins of wheels in wheels/, installed offline with",
        f"#   pip install --no-index --find-links wheels --require-hashes{flag} \\",
        f"#     -r {requirements_name(role, no_deps=no_deps)}",
    ]
    if no_deps:
        lines.append(f"# after {requirements_name(role)}: these go in without their declared deps.")
    for dist in sorted(dists, key=lambda d: d.name):
        lines.append(f"{dist.name}=={dist.version} \\\n    --hash=sha256:{dist.sha256}")
    return "\n".join(lines) + "\n"


def lock_role(role: str, appliance: Dist, options: BuildOptions, cache: Path, log: Log) -> RoleLock:
    """Resolve and collect one role's wheels."""
    spec = ROLES[role]
    extras = ",".join(spec.extras)
    requirement = f"{appliance.path}[{extras}]" if extras else str(appliance.path)
    log(f"  resolving role {role} ({APPLIANCE}[{extras}])")
    dists = [appliance, *fetch(resolve([requirement], options, cache, log=log), cache, options)]
    loose: list[Dist] = []
    if spec.no_deps:
        log(f"  resolving without dependencies: {', '.join(spec.no_deps)}")
        found = resolve(list(spec.no_deps), options, cache, no_deps=True, log=log)
        loose = fetch(found, cache, options)
    return RoleLock(role, tuple(dists), tuple(loose))


# -- the archive ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One file of the archive: its path inside the top folder, its content, its mode."""

    name: str
    source: Path | bytes
    executable: bool = False

    def size(self) -> int:
        return len(self.source) if isinstance(self.source, bytes) else self.source.stat().st_size

    def sha256(self) -> str:
        if isinstance(self.source, bytes):
            return sha256_bytes(self.source)
        return sha256_file(self.source)[0]


def _tree(root: Path, prefix: str) -> list[Entry]:
    """Every file under ``root`` (links followed), as entries under ``prefix``."""
    entries: list[Entry] = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_NAMES)
        for name in sorted(files):
            if name.endswith(SKIP_SUFFIXES):
                continue
            path = Path(folder) / name
            if not path.is_file():
                raise BuildError(f"{path} is a dangling link or not a file")
            relative = path.relative_to(root).as_posix()
            executable = bool(path.stat().st_mode & 0o111)
            entries.append(Entry(f"{prefix}/{relative}", path, executable))
    return entries


def _manifest(
    kind: str, version: str, locks: Sequence[RoleLock], options: BuildOptions, epoch: int
) -> bytes:
    body = {
        "kind": kind,
        "version": version,
        "roles": [lock.role for lock in locks],
        "python": f"cp{sys.version_info.major}{sys.version_info.minor}",
        "platform": sysconfig.get_platform(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)),
        "release_key_id": options.key.key_id,
        "constraints": {path.name: path.read_text() for path in options.constraints},
        "os_packages": (
            {DEBIAN_12: sorted(deb.name for deb in options.os_packages.glob("*.deb"))}
            if options.os_packages is not None
            else {}
        ),
        "requirements": {
            lock.role: {
                "with_deps": requirements_name(lock.role),
                "no_deps": requirements_name(lock.role, no_deps=True) if lock.no_deps else None,
                "pins": {d.name: d.version for d in (*lock.dists, *lock.no_deps)},
            }
            for lock in locks
        },
    }
    return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()


def archive_entries(
    kind: str, version: str, locks: Sequence[RoleLock], options: BuildOptions, epoch: int
) -> list[Entry]:
    """Everything but ``SHA256SUMS`` and its signature."""
    project = options.project
    wheels: dict[str, Dist] = {}
    for lock in locks:
        for dist in (*lock.dists, *lock.no_deps):
            wheels.setdefault(dist.filename, dist)
    entries = [Entry(f"wheels/{name}", dist.path) for name, dist in sorted(wheels.items())]
    for lock in locks:
        entries.append(
            Entry(requirements_name(lock.role), lock_text(lock.role, lock.dists).encode())
        )
        if lock.no_deps:
            text = lock_text(lock.role, lock.no_deps, no_deps=True)
            entries.append(Entry(requirements_name(lock.role, no_deps=True), text.encode()))
        unit = project / "systemd" / f"appliance-{lock.role}.service"
        template = project / "packaging" / "config" / f"{lock.role}.env.example"
        for path in (unit, template):
            if not path.is_file():
                raise BuildError(f"{path} is missing")
        # the role's unit and its helpers (an agent's upgrade path unit and service)
        units = sorted((project / "systemd").glob(f"appliance-{lock.role}*.*"))
        entries += [Entry(f"systemd/{path.name}", path) for path in units]
        entries.append(Entry(f"config/{template.name}", template))
    if options.os_packages is not None:
        entries += [Entry(name, source) for name, source in carried(options.os_packages)]
    entries += _tree(project / "ansible", "ansible")
    guide = project / "packaging" / "README.md"
    if guide.is_file():
        entries.append(Entry("README.md", guide))
    entries.append(Entry("MANIFEST.json", _manifest(kind, version, locks, options, epoch)))
    return entries


def _add(tar: tarfile.TarFile, name: str, data: Path | bytes | None, mode: int, epoch: int) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = epoch
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = mode
    if data is None:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        return
    if isinstance(data, bytes):
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        return
    info.size = data.stat().st_size
    with data.open("rb") as handle:
        tar.addfile(info, handle)


def write_archive(
    path: Path, top: str, entries: Sequence[Entry], hashes: dict[str, str], key: KeyPair, epoch: int
) -> None:
    """Write the tar (fixed order, owners and times), ``SHA256SUMS`` and its signature last."""
    sums = format_sums(hashes)
    signature = key.private.sign(sums)
    folders = {top}
    for entry in entries:
        parts = entry.name.split("/")[:-1]
        folders.update(f"{top}/" + "/".join(parts[: i + 1]) for i in range(len(parts)))
    partial = path.with_name(path.name + ".part")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        for folder in sorted(folders):
            _add(tar, folder, None, 0o755, epoch)
        for entry in sorted(entries, key=lambda e: e.name):
            _add(
                tar,
                f"{top}/{entry.name}",
                entry.source,
                0o755 if entry.executable else 0o644,
                epoch,
            )
        _add(tar, f"{top}/{SUMS_NAME}", sums, 0o644, epoch)
        _add(tar, f"{top}/{SIG_NAME}", signature, 0o644, epoch)
    os.replace(partial, path)


def build_archive(
    kind: str,
    options: BuildOptions,
    *,
    appliance: Dist,
    cache: Path,
    log: Log = print,
) -> BuiltArchive:
    """Build ``appliance-<kind>-<version>.tar`` into ``options.out``."""
    if kind not in KINDS:
        raise BuildError(f"unknown archive kind {kind!r}; one of {', '.join(KINDS)}")
    epoch = _epoch(options)
    started = time.monotonic()
    log(f"archive {kind}: roles {', '.join(KINDS[kind])}")
    locks = [lock_role(role, appliance, options, cache, log) for role in KINDS[kind]]
    entries = archive_entries(kind, appliance.version, locks, options, epoch)
    names = [entry.name for entry in entries]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise BuildError(f"two files would be packed as {sorted(duplicates)[0]}")
    known = {
        f"wheels/{d.filename}": d.sha256 for lock in locks for d in (*lock.dists, *lock.no_deps)
    }
    hashes = {entry.name: known.get(entry.name) or entry.sha256() for entry in entries}
    top = f"appliance-{kind}-{appliance.version}"
    options.out.mkdir(parents=True, exist_ok=True)
    path = options.out / f"{top}.tar"
    log(f"  writing {path.name} ({len(entries)} files)")
    write_archive(path, top, entries, hashes, options.key, epoch)
    size = path.stat().st_size
    log(f"  {path} {size / 1e6:.1f} MB in {time.monotonic() - started:.0f} s")
    return BuiltArchive(
        kind=kind,
        path=path,
        size=size,
        files=len(entries) + 2,
        wheels=sum(1 for name in names if name.startswith("wheels/")),
        roles=KINDS[kind],
        locks=tuple(locks),
    )


def _epoch(options: BuildOptions) -> int:
    if options.source_date_epoch is not None:
        return options.source_date_epoch
    raw = os.environ.get("SOURCE_DATE_EPOCH", "")
    return int(raw) if raw.isdigit() else int(time.time())


def build(kinds: Sequence[str], options: BuildOptions, log: Log = print) -> list[BuiltArchive]:
    """Build each archive kind in ``kinds``; the appliance wheel is built once."""
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        raise BuildError(f"unknown archive kind(s) {unknown}; one of {', '.join(KINDS)}")
    for constraint in options.constraints:
        if not constraint.is_file():
            raise BuildError(f"constraint file {constraint} is missing")
    with tempfile.TemporaryDirectory(prefix="appliance-build-") as tmp:
        cache = options.wheel_cache or Path(tmp) / "wheels"
        cache.mkdir(parents=True, exist_ok=True)
        log(f"building the appliance wheel from {options.project}")
        appliance = build_appliance_wheel(
            options.project, Path(tmp) / "appliance", options.python, _epoch(options)
        )
        return [
            build_archive(kind, options, appliance=appliance, cache=cache, log=log)
            for kind in kinds
        ]
