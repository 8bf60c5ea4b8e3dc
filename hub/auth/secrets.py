"""What the hub stores of a bearer secret: its hash, never the secret."""

from __future__ import annotations

from appliance.fsutil import sha256_bytes


def sha256_hex(secret: str) -> str:
    """What the hub stores of a bearer secret (refresh or enrolment token)."""
    return sha256_bytes(secret.encode())
