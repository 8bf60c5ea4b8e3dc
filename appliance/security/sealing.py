"""Model confidentiality: bundles sealed to the edge boxes enrolled to receive them.

A signature proves who made a bundle, not who may read it. An edge box's disk
or a USB stick copied to another machine would otherwise hand over the model,
so the hub encrypts every bundle file with a fresh 256-bit data key and wraps
that key to each enrolled agent's X25519 public key. Only the agent holding the
matching private key (``NAME.x25519.key``, mode 0600) can open it.

Two layers, both built from the ``cryptography`` package only:

* **Key wrapping** (:func:`wrap_key` / :func:`unwrap_key`) is ECIES: an
  ephemeral X25519 key agrees a secret with the recipient, HKDF-SHA256 turns it
  into a one-off key-encryption key, AES-256-GCM seals the data key. The
  caller's ``context`` (say, bundle and agent ids) is bound into both the KDF
  and the AAD, so a wrapped key cannot be replayed for another bundle.

* **File encryption** (:func:`encrypt_file` / :func:`decrypt_file`) is the
  STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár (2015) over
  AES-256-GCM, so a 2 GiB tar is processed in bounded memory yet authenticated
  as a whole: every segment's nonce carries its index and a "last segment" flag,
  which makes reordering, dropping, truncating or extending the file detectable.

File format::

    header   = b"APSEAL1\\n" || segment_size (4 bytes, big-endian) || nonce_prefix (7 bytes)
    segment  = AES-GCM(key, nonce, plaintext[i], aad=header || aad) -> ciphertext || tag(16)
    nonce    = nonce_prefix (7) || i (4 bytes, big-endian) || last (1 byte: 1 final, else 0)

Every segment but the last holds exactly ``segment_size`` plaintext bytes; the
last holds 0 to ``segment_size`` bytes (an empty file still has one segment).
Decryption writes to a 0600 temporary file beside ``dst`` and renames it into
place only once the final segment has been authenticated, so no caller ever
sees unauthenticated plaintext under the real name.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from appliance.errors import ConfigError, DecryptionError, InvalidInputError
from appliance.fsutil import atomic_open, atomic_write_bytes
from appliance.security.keys import read_private_pem

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

ENCRYPTION_KEY_NAME = "encryption"

DATA_KEY_LENGTH = 32
WRAP_ALGORITHM = "X25519-HKDF-SHA256-A256GCM"
_WRAP_INFO = b"appliance.wrap/1"
_WRAP_NONCE_LENGTH = 12

MAGIC = b"APSEAL1\n"
DEFAULT_SEGMENT_SIZE = 4 << 20
MAX_SEGMENT_SIZE = 64 << 20
_PREFIX_LENGTH = 7
HEADER_LENGTH = len(MAGIC) + 4 + _PREFIX_LENGTH
TAG_LENGTH = 16
_MAX_SEGMENTS = 1 << 32  # the counter is 4 bytes

# ``encrypt_into``/``decrypt_into`` avoid one allocation and copy per segment;
# older ``cryptography`` releases lack them, so fall back to the plain calls.
_HAS_INTO = hasattr(AESGCM, "decrypt_into") and hasattr(AESGCM, "encrypt_into")


# --------------------------------------------------------------------------- keys


def _private_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.x25519.key"


def _public_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.x25519.pub"


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_pem(key: X25519PublicKey) -> str:
    """The SubjectPublicKeyInfo PEM an agent sends the hub when it enrolls."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_pem(text: str) -> X25519PublicKey:
    """Parse an agent's encryption key; raise :class:`InvalidInputError` if it is not X25519 PEM."""
    try:
        public = serialization.load_pem_public_key(text.encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError, AttributeError) as exc:
        raise InvalidInputError("encryption_key: not a PEM public key") from exc
    if not isinstance(public, X25519PublicKey):
        raise InvalidInputError("encryption_key: must be an X25519 public key")
    return public


def init_encryption_key(directory: Path, name: str = ENCRYPTION_KEY_NAME) -> X25519PrivateKey:
    """Create ``directory/NAME.x25519.key`` and ``NAME.x25519.pub``; reuse an existing key."""
    private_path = _private_path(directory, name)
    if private_path.exists():
        private = load_encryption_key(directory, name)
        public_path = _public_path(directory, name)
        if not public_path.exists():
            pem = public_pem(private.public_key()).encode("ascii")
            atomic_write_bytes(public_path, pem, mode=0o644)
        return private
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    private = X25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    atomic_write_bytes(private_path, pem, mode=0o600)
    atomic_write_bytes(
        _public_path(directory, name), public_pem(private.public_key()).encode("ascii"), mode=0o644
    )
    return private


def load_encryption_key(directory: Path, name: str = ENCRYPTION_KEY_NAME) -> X25519PrivateKey:
    """Load ``directory/NAME.x25519.key``, refusing one that group or others can read."""
    path = _private_path(directory, name)
    private = read_private_pem(path, "encryption key")
    if not isinstance(private, X25519PrivateKey):
        raise ConfigError(f"{path} is not an X25519 key")
    return private


# ------------------------------------------------------------------ key wrapping


def new_data_key() -> bytes:
    """A fresh random 256-bit AES key for one bundle."""
    return secrets.token_bytes(DATA_KEY_LENGTH)


def _kek(shared: bytes, epk: bytes, recipient: bytes, context: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=epk + recipient,
        info=_WRAP_INFO + context,
    ).derive(shared)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def wrap_key(data_key: bytes, recipient: X25519PublicKey, context: bytes) -> dict[str, str]:
    """Seal ``data_key`` so only ``recipient``'s private key, given the same ``context``, opens it.

    The result is JSON-safe: ``{"alg", "epk", "nonce", "ct"}`` with base64 values.
    """
    if len(data_key) != DATA_KEY_LENGTH:
        raise ValueError(f"data key must be {DATA_KEY_LENGTH} bytes, not {len(data_key)}")
    ephemeral = X25519PrivateKey.generate()
    epk = _raw(ephemeral.public_key())
    kek = _kek(ephemeral.exchange(recipient), epk, _raw(recipient), context)
    nonce = secrets.token_bytes(_WRAP_NONCE_LENGTH)
    ct = AESGCM(kek).encrypt(nonce, data_key, context)
    return {"alg": WRAP_ALGORITHM, "epk": _b64(epk), "nonce": _b64(nonce), "ct": _b64(ct)}


def _field(wrapped: Mapping[str, str], name: str, length: int) -> bytes:
    value = wrapped.get(name)
    if not isinstance(value, str):
        raise DecryptionError(f"wrapped key is malformed: {name!r} is missing or not a string")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise DecryptionError(f"wrapped key is malformed: {name!r} is not base64") from exc
    if len(raw) != length:
        raise DecryptionError(f"wrapped key is malformed: {name!r} is not {length} bytes")
    return raw


def unwrap_key(wrapped: Mapping[str, str], private: X25519PrivateKey, context: bytes) -> bytes:
    """Open a key sealed by :func:`wrap_key`; raise :class:`DecryptionError` on any failure."""
    if not isinstance(wrapped, Mapping):
        raise DecryptionError("wrapped key is malformed: not an object")
    if wrapped.get("alg") != WRAP_ALGORITHM:
        raise DecryptionError(
            f"wrapped key is malformed: algorithm {wrapped.get('alg')!r} is not {WRAP_ALGORITHM}"
        )
    epk = _field(wrapped, "epk", 32)
    nonce = _field(wrapped, "nonce", _WRAP_NONCE_LENGTH)
    ct = _field(wrapped, "ct", DATA_KEY_LENGTH + TAG_LENGTH)
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(epk))
        kek = _kek(shared, epk, _raw(private.public_key()), context)
        return AESGCM(kek).decrypt(nonce, ct, context)
    except (InvalidTag, ValueError) as exc:
        raise DecryptionError(
            "wrapped key is not addressed to this device or was altered",
            hint="check that the hub has this agent's current encryption key",
        ) from exc


# --------------------------------------------------------------- file encryption


def _check_segment_size(segment_size: int) -> None:
    if not 1 <= segment_size <= MAX_SEGMENT_SIZE:
        raise ValueError(f"segment size must be 1..{MAX_SEGMENT_SIZE} bytes, not {segment_size}")


def _check_data_key(data_key: bytes) -> None:
    if len(data_key) != DATA_KEY_LENGTH:
        raise ValueError(f"data key must be {DATA_KEY_LENGTH} bytes, not {len(data_key)}")


def encrypted_length(plain_length: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    """The exact size of the file :func:`encrypt_file` writes for ``plain_length`` bytes."""
    if plain_length < 0:
        raise ValueError(f"plain length must not be negative, not {plain_length}")
    _check_segment_size(segment_size)
    segments = max(1, -(-plain_length // segment_size))
    return HEADER_LENGTH + plain_length + segments * TAG_LENGTH


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _read_full(handle: io.BufferedReader, view: memoryview) -> int:
    """Fill ``view`` unless the file ends first; return how many bytes were read."""
    filled = 0
    while filled < len(view):
        got = handle.readinto(view[filled:])
        if not got:
            break
        filled += got
    return filled


def _at_eof(handle: io.BufferedReader) -> bool:
    """Look one byte ahead without consuming it: is the file done?"""
    return not handle.peek(1)


def encrypt_file(
    src: Path,
    dst: Path,
    data_key: bytes,
    aad: bytes,
    *,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> None:
    """Encrypt ``src`` into ``dst`` (written atomically) under ``data_key``, binding ``aad``."""
    _check_data_key(data_key)
    _check_segment_size(segment_size)
    header = MAGIC + segment_size.to_bytes(4, "big") + secrets.token_bytes(_PREFIX_LENGTH)
    prefix = header[-_PREFIX_LENGTH:]
    segment_aad = header + aad
    aead = AESGCM(data_key)
    plain = bytearray(segment_size)
    sealed = bytearray(segment_size + TAG_LENGTH)
    plain_view, sealed_view = memoryview(plain), memoryview(sealed)
    with src.open("rb") as source, atomic_open(dst, mode=0o644) as out:
        out.write(header)
        counter = 0
        while True:
            if counter >= _MAX_SEGMENTS:
                raise ValueError(f"{src} needs more than {_MAX_SEGMENTS} segments")
            n = _read_full(source, plain_view)
            last = n < segment_size or _at_eof(source)
            nonce = _nonce(prefix, counter, last)
            if _HAS_INTO:
                aead.encrypt_into(nonce, plain_view[:n], segment_aad, sealed_view[: n + TAG_LENGTH])
                out.write(sealed_view[: n + TAG_LENGTH])
            else:
                out.write(aead.encrypt(nonce, bytes(plain_view[:n]), segment_aad))
            if last:
                return
            counter += 1


def _decrypted_segments(
    source: io.BufferedReader, name: str, data_key: bytes, aad: bytes, max_bytes: int
) -> Iterator[memoryview]:
    """Plaintext segment by segment; each view is valid until the next one is asked for.

    Only when the generator finishes has the final segment been authenticated:
    a caller must not use what it got before that (truncation shows only at the end).
    """
    _check_data_key(data_key)
    if max_bytes < 0:
        raise ValueError(f"max_bytes must not be negative, not {max_bytes}")
    header = source.read(HEADER_LENGTH)
    if len(header) != HEADER_LENGTH or not header.startswith(MAGIC):
        raise DecryptionError(f"{name} is not a sealed file (bad or missing header)")
    segment_size = int.from_bytes(header[len(MAGIC) : len(MAGIC) + 4], "big")
    if not 1 <= segment_size <= MAX_SEGMENT_SIZE:
        raise DecryptionError(
            f"{name}: header claims a segment size of {segment_size} bytes "
            f"(allowed 1..{MAX_SEGMENT_SIZE})"
        )
    size = os.fstat(source.fileno()).st_size
    if size > encrypted_length(max_bytes, segment_size):
        raise DecryptionError(
            f"{name}: {size} bytes sealed is more than max_bytes={max_bytes} allows"
        )
    prefix = header[-_PREFIX_LENGTH:]
    segment_aad = header + aad
    aead = AESGCM(data_key)
    chunk_size = segment_size + TAG_LENGTH
    sealed = bytearray(chunk_size)
    plain = bytearray(segment_size)
    sealed_view, plain_view = memoryview(sealed), memoryview(plain)
    total = 0
    counter = 0
    while True:
        if counter >= _MAX_SEGMENTS:
            raise DecryptionError(f"{name}: more than {_MAX_SEGMENTS} segments")
        n = _read_full(source, sealed_view)
        if n < TAG_LENGTH:
            raise DecryptionError(f"{name} is truncated: segment {counter} is missing or cut short")
        last = n < chunk_size or _at_eof(source)
        plain_length = n - TAG_LENGTH
        if total + plain_length > max_bytes:
            raise DecryptionError(f"{name}: plaintext exceeds max_bytes={max_bytes}")
        nonce = _nonce(prefix, counter, last)
        try:
            if _HAS_INTO:
                aead.decrypt_into(nonce, sealed_view[:n], segment_aad, plain_view[:plain_length])
                yield plain_view[:plain_length]
            else:
                yield memoryview(aead.decrypt(nonce, bytes(sealed_view[:n]), segment_aad))
        except InvalidTag as exc:
            raise DecryptionError(
                f"{name}: segment {counter} failed authentication: wrong key, "
                "not addressed to this device, or the file was altered or truncated"
            ) from exc
        total += plain_length
        if last:
            return
        counter += 1


def decrypt_file(src: Path, dst: Path, data_key: bytes, aad: bytes, *, max_bytes: int) -> int:
    """Decrypt ``src`` into ``dst`` and return the plaintext length.

    ``dst`` appears only when every segment, including the final one, has been
    authenticated; on any failure :class:`DecryptionError` is raised and neither
    ``dst`` nor a temporary file is left behind. More than ``max_bytes`` of
    plaintext is refused before it is written.
    """
    total = 0
    with src.open("rb") as source, atomic_open(dst, mode=0o600) as out:
        for segment in _decrypted_segments(source, src.name, data_key, aad, max_bytes):
            out.write(segment)
            total += len(segment)
    return total


class _SegmentReader(io.RawIOBase):
    """A read-only stream over decrypted segments (for ``tarfile``'s streaming mode)."""

    def __init__(self, segments: Iterator[memoryview]) -> None:
        self._segments = segments
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        while not self._pending:
            segment = next(self._segments, None)
            if segment is None:
                return 0
            self._pending = segment
        n = min(len(target), len(self._pending))
        target[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


@contextlib.contextmanager
def open_decrypted(
    src: Path, data_key: bytes, aad: bytes, *, max_bytes: int
) -> Iterator[io.BufferedReader]:
    """Read ``src``'s plaintext as a stream, without writing it anywhere.

    The stream raises :class:`DecryptionError` where authentication fails; the
    last check comes with the end of the stream, so whatever the caller made of
    the bytes must be discarded unless it read to the end without an error.
    """
    with src.open("rb") as source:
        segments = _decrypted_segments(source, src.name, data_key, aad, max_bytes)
        yield io.BufferedReader(_SegmentReader(segments), buffer_size=1 << 20)
