"""Tokens an enrolled agent signs for itself with its own Ed25519 key.

The hub verifies them with the public key the agent gave at enrolment (see
``hub/identity/tokens.py``): EdDSA only, ``kid`` = ``agent:<id>``, short-lived.
"""

from __future__ import annotations

import time

import jwt

from appliance.security.keys import KeyPair

ALGORITHM = "EdDSA"
AGENT_KID_PREFIX = "agent:"
DEFAULT_AUDIENCE = "appliance"


def agent_subject(agent_id: int) -> str:
    return f"{AGENT_KID_PREFIX}{agent_id}"


def issue_agent_token(
    key: KeyPair, agent_id: int, *, audience: str = DEFAULT_AUDIENCE, ttl_s: int = 120
) -> str:
    now = int(time.time())
    subject = agent_subject(agent_id)
    claims = {
        "iss": subject,
        "sub": subject,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_s,
    }
    return jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": subject})
