"""Ed25519 key pairs on disk, private halves readable by the owner only.

Keys are stored PEM-encoded: ``NAME.key`` (PKCS#8, mode 0600, in a 0700
folder) and ``NAME.pub`` (SubjectPublicKeyInfo, 0644). A key id is the hex
SHA-256 of the raw 32-byte public key, as TUF computes ids.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from appliance.errors import ConfigError
from appliance.fsutil import atomic_write_bytes

SIGNING_KEY_NAME = "signing"


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True)
class KeyPair:
    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        return key_id(self.public)


def keys_dir(data_dir: Path) -> Path:
    return data_dir / "keys"


def init_keypair(directory: Path, name: str = SIGNING_KEY_NAME, *, force: bool = False) -> KeyPair:
    """Create ``directory/NAME.key`` and ``NAME.pub``; reuse an existing pair unless ``force``.

    A public key without its private key is refused, not replaced: the pair was in use
    (agents pin it, bundles and audit checkpoints carry its signatures), so a new pair
    made in its place would quietly break what was signed with it."""
    private_path = directory / f"{name}.key"
    public_path = directory / f"{name}.pub"
    if private_path.exists() and not force:
        return load_keypair(directory, name)
    if public_path.exists() and not force:
        raise ConfigError(
            f"{public_path} is here but its private key {private_path.name} is not",
            hint="restore the keys folder from a backup ('appliance hub restore'); to make "
            f"a new key instead, move {public_path.name} away first: what the old key signed "
            "(pinned by agents, bundles, audit checkpoints) will not verify against it",
        )
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    atomic_write_bytes(private_path, pem, mode=0o600)
    atomic_write_bytes(public_path, public_pem(private.public_key()), mode=0o644)
    return KeyPair(private)


def read_private_pem(path: Path, what: str) -> PrivateKeyTypes:
    """A PEM private key that only its owner can read; clear errors otherwise."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"no {what} at {path}", hint="run 'appliance keys init' first") from exc
    if mode & 0o077:
        raise ConfigError(
            f"private key {path} is readable by others (mode {mode:o})",
            hint=f"run 'chmod 600 {path}'",
        )
    try:
        return serialization.load_pem_private_key(data, password=None)
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM private key") from exc


def load_keypair(directory: Path, name: str = SIGNING_KEY_NAME) -> KeyPair:
    path = directory / f"{name}.key"
    private = read_private_pem(path, "signing key")
    if not isinstance(private, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 key")
    return KeyPair(private)


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(
            f"no trusted public key at {path}",
            hint="copy the hub's keys/signing.pub there or pass --trusted-key",
        ) from exc
    try:
        public = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM public key") from exc
    if not isinstance(public, Ed25519PublicKey):
        raise ConfigError(f"{path} is not an Ed25519 public key")
    return public
