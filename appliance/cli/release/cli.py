"""``appliance-build``: build, verify and sign the offline installer archives.

::

    appliance-build keygen --out /secure/release-key            # once: release.key, release.pub
    appliance-build build hub agent --out dist --signing-key /secure/release-key/release.key \\
        --constraint constraints/cpu.txt
    appliance-build verify dist/appliance-agent-0.1.0.tar --public-key release.pub
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.cli.release import os_packages
from appliance.cli.release.build import KINDS, BuildOptions, build
from appliance.errors import ApplianceError, ConfigError
from appliance.security.keys import KeyPair, init_keypair, read_private_pem
from appliance.security.release_archives import main as verify_main

RELEASE_KEY_NAME = "release"
DEFAULT_CACHE = Path(".cache/appliance-build/wheels")


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def load_signing_key(path: Path) -> KeyPair:
    """The release key: an Ed25519 PKCS#8 PEM that only its owner can read."""

    private = read_private_pem(path, "release signing key")
    if not isinstance(private, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 private key")
    return KeyPair(private)


def _mark_ignored(cache: Path) -> None:
    """A cache inside a checkout ignores itself (``.gitignore`` with ``*``)."""
    marker = cache / ".gitignore"
    if not marker.exists():
        cache.mkdir(parents=True, exist_ok=True)
        marker.write_text("# wheel cache of appliance-build\n*\n")


def cmd_build(args: argparse.Namespace) -> int:
    if args.throwaway_key:
        folder = args.out / "throwaway-key"
        key = init_keypair(folder, RELEASE_KEY_NAME, force=True)
        _log(
            f"signing with a THROW-AWAY key (tests only): {folder / 'release.pub'} "
            f"(key id {key.key_id[:16]})"
        )
    elif args.signing_key is not None:
        key = load_signing_key(args.signing_key)
    else:
        raise ConfigError(
            "no release key", hint="pass --signing-key PEM (or --throwaway-key for a test build)"
        )
    constraints = () if args.no_constraint else tuple(args.constraint or ())
    if not constraints and not args.no_constraint:
        default = args.project / "constraints" / "cpu.txt"
        constraints = (default,)
        _log(f"constraint: {default} (the CPU build of torch; GPU sites pass their own)")
    cache = None if args.no_cache else (args.wheel_cache or args.project / DEFAULT_CACHE)
    if cache is not None:
        _mark_ignored(cache)
    options = BuildOptions(
        project=args.project.resolve(),
        out=args.out,
        key=key,
        constraints=tuple(path.resolve() for path in constraints),
        wheel_cache=cache.resolve() if cache else None,
        prefer_offline=args.prefer_offline,
        os_packages=args.os_packages.resolve() if args.os_packages else None,
    )
    archives = build(args.kinds or list(KINDS), options, log=_log)
    for archive in archives:
        print(
            f"{archive.path}\t{archive.size}\t{archive.size / 1e6:.1f} MB\t"
            f"{archive.wheels} wheels\troles {','.join(archive.roles)}"
        )
    return 0


def cmd_os_packages(args: argparse.Namespace) -> int:
    for deb in os_packages.fetch(args.out):
        print(deb)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """The same check hosts run with the archive's own ``verify_archive.py``."""
    return verify_main([str(args.archive), "--public-key", str(args.public_key)])


def cmd_keygen(args: argparse.Namespace) -> int:
    existing = args.out / f"{args.name}.key"
    if existing.exists() and not args.force:
        raise ConfigError(f"{existing} exists", hint="pass --force to replace it")
    key = init_keypair(args.out, args.name, force=True)
    print(f"release key {key.key_id[:16]}: private {existing} (0600)")
    print(f"public {args.out}/{args.name}.pub: pin it on the control node (appliance_release_key)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="appliance-build", description="offline installer archives for the appliance"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    make = sub.add_parser("build", help="build and sign installer archives")
    make.add_argument(
        "kinds", nargs="*", metavar="KIND", help="hub (hub + worker), agent (default: both)"
    )
    make.add_argument("--out", type=Path, default=Path("dist"), help="output folder (dist)")
    make.add_argument("--project", type=Path, default=Path("."), help="repository root (.)")
    key = make.add_mutually_exclusive_group()
    key.add_argument("--signing-key", type=Path, help="release key, Ed25519 PKCS#8 PEM (0600)")
    key.add_argument(
        "--throwaway-key",
        action="store_true",
        help="sign with a new key written to OUT/throwaway-key (tests only)",
    )
    make.add_argument(
        "--constraint",
        action="append",
        type=Path,
        metavar="FILE",
        help="pip constraints (repeatable; default constraints/cpu.txt: CPU torch)",
    )
    make.add_argument(
        "--no-constraint",
        action="store_true",
        help="no constraint file (a GPU site: torch's CUDA build from the index)",
    )
    make.add_argument(
        "--wheel-cache", type=Path, help=f"keep collected wheels here (default {DEFAULT_CACHE})"
    )
    make.add_argument("--no-cache", action="store_true", help="collect into a temporary folder")
    make.add_argument(
        "--prefer-offline",
        action="store_true",
        help="resolve from the wheel cache first, the indexes only if that fails",
    )
    make.add_argument(
        "--os-packages",
        type=Path,
        metavar="DIR",
        help="carry these Debian 12 packages (python3.11-venv and what it needs) for hosts "
        "without them; fetch them with 'appliance-build os-packages'",
    )
    make.set_defaults(func=cmd_build)

    debs = sub.add_parser(
        "os-packages", help="fetch the Debian 12 packages an archive carries (apt-get download)"
    )
    debs.add_argument("--out", type=Path, required=True, help="folder for the .deb files")
    debs.set_defaults(func=cmd_os_packages)

    check = sub.add_parser("verify", help="check an archive's signature and every file's hash")
    check.add_argument("archive", type=Path, help="the .tar file or its unpacked folder")
    check.add_argument(
        "--public-key", type=Path, required=True, help="the pinned release public key (PEM)"
    )
    check.set_defaults(func=cmd_verify)

    keygen = sub.add_parser("keygen", help="create a release signing key pair")
    keygen.add_argument("--out", type=Path, required=True, help="folder (made 0700)")
    keygen.add_argument("--name", default=RELEASE_KEY_NAME, help="file stem (release)")
    keygen.add_argument("--force", action="store_true", help="replace an existing key")
    keygen.set_defaults(func=cmd_keygen)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``appliance-build``; exit 0 on success, 1 refused, 2 on errors."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ApplianceError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
