"""Password hashing with scrypt (memory-hard), from ``cryptography``.

Stored as ``scrypt$<log2 n>$<r>$<p>$<salt b64>$<hash b64>`` so parameters can
be raised later without breaking existing hashes.
"""

from __future__ import annotations

import base64
import functools
import hmac
import os

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

LOG2_N = 15  # n = 32768, r = 8: 32 MiB and ~50 ms per hash on one core
R = 8
P = 1
LENGTH = 32
MIN_PASSWORD_LENGTH = 12


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = Scrypt(salt=salt, length=LENGTH, n=1 << LOG2_N, r=R, p=P).derive(password.encode())
    return f"scrypt${LOG2_N}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, log2_n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt, digest = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        kdf = Scrypt(salt=salt, length=len(digest), n=1 << int(log2_n), r=int(r), p=int(p))
        kdf.verify(password.encode(), digest)
        return True
    except (InvalidKey, ValueError):
        return False


@functools.cache
def dummy_hash() -> str:
    """A hash of a random password, checked when the user does not exist, so that "no such
    user" and "wrong password" take the same time (made on first use: 80 ms of every start)."""
    return hash_password(_b64(os.urandom(24)))


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
