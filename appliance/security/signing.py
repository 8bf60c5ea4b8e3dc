"""Signing and verifying manifests: the one place that decides what is trusted.

A signed document is an envelope in the manner of TUF metadata::

    {"signed": {...}, "signatures": [{"keyid": "<hex>", "sig": "<hex>"}]}

The signature covers the canonical JSON of ``signed`` (sorted keys, no
insignificant white space, UTF-8). Verification is pure: it takes bytes and
trusted keys and touches neither disk nor network. The signed-update issue
replaces this module with TUF metadata; callers only use :func:`sign_document`
and :func:`verify_document`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from appliance.errors import BundleFormatError, SignatureError
from appliance.security.keys import KeyPair, key_id


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sign_document(signed: dict[str, Any], key: KeyPair) -> bytes:
    """Return the envelope bytes (pretty-printed; the signature covers canonical JSON)."""
    signature = key.private.sign(canonical_json(signed)).hex()
    envelope = {"signed": signed, "signatures": [{"keyid": key.key_id, "sig": signature}]}
    return json.dumps(envelope, indent=2, sort_keys=True).encode("utf-8")


def verify_document(data: bytes, trusted: Iterable[Ed25519PublicKey]) -> dict[str, Any]:
    """Return ``signed`` if one signature by a trusted key verifies; raise otherwise."""
    try:
        envelope = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleFormatError(f"manifest is not valid JSON: {exc}") from exc
    if not isinstance(envelope, dict) or not isinstance(envelope.get("signed"), dict):
        raise BundleFormatError("manifest has no 'signed' object")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise SignatureError("manifest is not signed")
    keys = {key_id(k): k for k in trusted}
    payload = canonical_json(envelope["signed"])
    seen: list[str] = []
    for entry in signatures:
        if not isinstance(entry, dict):
            continue
        kid, sig = entry.get("keyid"), entry.get("sig")
        if not isinstance(kid, str) or not isinstance(sig, str):
            continue
        seen.append(kid[:16])
        public = keys.get(kid)
        if public is None:
            continue
        try:
            public.verify(bytes.fromhex(sig), payload)
        except (InvalidSignature, ValueError) as exc:
            raise SignatureError(
                f"manifest signature by trusted key {kid[:16]} does not verify: "
                "the manifest was altered after signing"
            ) from exc
        signed: dict[str, Any] = envelope["signed"]
        return signed
    raise SignatureError(
        f"manifest is signed by untrusted key(s) {', '.join(seen) or '(none)'}; "
        f"trusted: {', '.join(k[:16] for k in keys) or '(none)'}",
        hint="the bundle was not signed by this agent's hub",
    )
