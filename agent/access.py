"""Who may use this agent's data plane: inference keys the hub issued, checked locally.

Client applications send ``Authorization: Bearer ak_<key_id>_<secret>``, or present a
client certificate the hub issued from the site CA in the TLS handshake (mutual TLS). The
group's signed index carries each live credential's SHA-256 (of the key's secret, or of
the certificate), the models it may call and its expiry
(:class:`~appliance.trust.layout.KeyGrant`), so a credential is checked here with no call
to the hub, online or off, and a revoked one stops working when the agent next verifies
the index. A bearer key, when sent, is the one checked. Inference, feedback, model
metadata, ``/agent/status`` and ``/metrics`` need a credential; ``/health`` and the v2
server health probes do not.

``APPLIANCE_OPEN_DATA_PLANE=true`` turns the check off: for a closed lab network only,
and said loudly in the log at start.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from appliance.errors import AuthenticationError, PermissionDeniedError
from appliance.trust.layout import GroupIndex, KeyGrant

log = logging.getLogger(__name__)

PREFIX = "ak_"
INDEX_FILE = "index.json"


class DataPlaneAccess:
    def __init__(
        self, *, open_access: bool = False, clock: Callable[[], float] = time.time
    ) -> None:
        self.open_access = open_access
        self.clock = clock
        self._grants: dict[str, KeyGrant] = {}
        self._certificates: dict[str, tuple[str, KeyGrant]] = {}
        self._stamp: tuple[int, int] | None = None
        if open_access:
            log.warning(
                "the data plane is open (APPLIANCE_OPEN_DATA_PLANE): anyone who reaches this "
                "agent may call its models"
            )

    def update(self, grants: dict[str, KeyGrant]) -> None:
        """Follow the signed index's keys (a verified index, online or offline)."""
        self._grants = {key_id: g for key_id, g in grants.items() if not g.certificate}
        self._certificates = {g.sha256: (k, g) for k, g in grants.items() if g.certificate}

    def reload(self, metadata_dir: Path) -> None:
        """Take the keys of the last verified index kept on disk, if it changed."""
        path = metadata_dir / INDEX_FILE
        try:
            stat = path.stat()
        except OSError:
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        try:
            index = msgspec.json.decode(path.read_bytes(), type=GroupIndex)
        except (OSError, msgspec.DecodeError) as exc:
            log.error("could not read the verified index for inference keys: %s", exc)
            return
        self._stamp = stamp
        self.update(index.keys)

    def check(
        self,
        authorization: str | None,
        model: str | None = None,
        client_certificate: str | None = None,
    ) -> str | None:
        """Refuse unless ``authorization`` holds a live key, or else the client presented a
        live certificate (its SHA-256 is ``client_certificate``), for ``model`` (any, for
        None); the caller as logs and the hub's audit name it (``inference-key:<id>``),
        None on an open data plane.

        401 for a missing, malformed, unknown, wrong or expired credential; 403 for one
        that may not call this model.
        """
        if self.open_access:
            return None
        if authorization:
            key_id, grant = self._bearer(authorization)
            what = "inference key"
        elif client_certificate:
            key_id, grant = self._certificate(client_certificate)
            what = "client certificate"
        else:
            raise AuthenticationError(
                "this agent needs an inference key",
                hint="send 'Authorization: Bearer <key>' or a client certificate; an admin "
                "issues either with 'appliance inference-key create'",
            )
        if grant.expires_at <= self.clock():
            raise AuthenticationError(f"{what} has expired", hint="ask for a new one")
        if model is not None and grant.models and model not in grant.models:
            raise PermissionDeniedError(f"this {what} may not call model {model!r}")
        return f"inference-key:{key_id}"

    def _certificate(self, sha256: str) -> tuple[str, KeyGrant]:
        found = self._certificates.get(sha256)
        if found is None:
            raise AuthenticationError(
                "client certificate is not one the hub issued for this agent's group, or it "
                "was revoked"
            )
        return found

    def _bearer(self, authorization: str) -> tuple[str, KeyGrant]:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.startswith(PREFIX):
            raise AuthenticationError("Authorization must be 'Bearer ak_…', an inference key")
        key_id, _, secret = token[len(PREFIX) :].partition("_")
        grant = self._grants.get(key_id)
        digest = hashlib.sha256(secret.encode()).hexdigest()
        if grant is None or not hmac.compare_digest(digest, grant.sha256):
            raise AuthenticationError("inference key is unknown, wrong or revoked")
        return key_id, grant
