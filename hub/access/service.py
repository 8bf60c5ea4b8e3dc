"""Issuing and revoking inference keys, and the grants agents receive for them.

A key is ``ak_<key_id>_<secret>``: 12 hex characters agents look it up by, then 43
characters of randomness. The hub keeps the secret's SHA-256 only, and publishes it in
the group's signed index (:class:`~appliance.trust.layout.KeyGrant`) with the models
the key may call and its expiry, so an agent checks keys with no call to the hub, even
offline. Revoking a key republishes the index without it; an agent that cannot reach
the hub keeps the key until its expiry (at most ``MAX_DAYS``) or the next offline bundle.

A credential created with a certificate signing request is a client certificate from the
site CA instead (mutual TLS): the grant then carries the certificate's SHA-256, which
agents match against the certificate presented in the TLS handshake, and is scoped,
expired and revoked like a key.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from appliance.clock import as_utc, iso_utc, utcnow
from appliance.errors import InvalidInputError, NotFoundError
from appliance.security.tls import certificate_sha256
from appliance.trust.layout import KeyGrant, check_name
from appliance.wire.fleet import InferenceKeyInfo, NewInferenceKey
from hub.access.records import InferenceKeyRecord
from hub.audit.service import AuditLog
from hub.auth.principal import Principal
from hub.db import session_scope
from hub.events import Changes
from hub.fleet.certificates import SiteCertificates
from hub.pagination import page_after
from hub.residency.policy import ResidencyPolicy

PREFIX = "ak_"
MAX_DAYS = 730


def secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _info(record: InferenceKeyRecord, key: str | None = None) -> InferenceKeyInfo:
    return InferenceKeyInfo(
        id=record.id or 0,
        key_id=record.key_id,
        name=record.name,
        zone=record.zone,
        group=record.group,
        models=list(record.models),
        created_by=record.created_by,
        created_at=iso_utc(record.created_at),
        expires_at=iso_utc(record.expires_at),
        revoked_at=iso_utc(record.revoked_at) if record.revoked_at else None,
        key=key,
        certificate=record.certificate,
    )


class InferenceKeys:
    def __init__(
        self,
        engine: Engine,
        audit: AuditLog,
        policy: ResidencyPolicy,
        certificates: SiteCertificates | None = None,
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.policy = policy
        self.certificates = certificates or SiteCertificates(None)
        self.changes = Changes()
        """Told after a key is issued or revoked: the group's signed index must follow."""

    def create(self, spec: NewInferenceKey, by: Principal) -> InferenceKeyInfo:
        self.policy.check_zones([spec.zone], "zone")
        check_name("group", spec.group)
        if not spec.name or len(spec.name) > 64:
            raise InvalidInputError("name: 1 to 64 characters, saying whose key it is")
        if not 1 <= spec.days <= MAX_DAYS:
            raise InvalidInputError(f"days: between 1 and {MAX_DAYS}")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        certificate = None
        if spec.csr is not None:
            certificate = self.certificates.issue_client(spec.csr, spec.name, spec.days)
            digest = certificate_sha256(certificate)
        with session_scope(self.engine) as session:
            record = InferenceKeyRecord(
                key_id=key_id,
                secret_sha256=secret_sha256(secret) if certificate is None else digest,
                certificate=certificate,
                name=spec.name,
                zone=spec.zone,
                group=spec.group,
                models=sorted(set(spec.models)),
                created_by=by.actor,
                expires_at=utcnow() + timedelta(days=spec.days),
            )
            session.add(record)
            session.flush()
            self.audit.append(
                session,
                actor=by.actor,
                action="inference_key.create",
                target=f"inference-key:{key_id}",
                outcome="ok",
                detail={
                    "name": spec.name,
                    "zone": spec.zone,
                    "group": spec.group,
                    "models": record.models,
                    "days": spec.days,
                    "kind": "key" if certificate is None else "client certificate",
                },
            )
            info = _info(record, key=None if certificate else f"{PREFIX}{key_id}_{secret}")
        self.changes.announce(by.actor, f"inference key {key_id} issued")
        return info

    def list(self, *, after_id: int = 0, limit: int = 100) -> list[InferenceKeyInfo]:
        with Session(self.engine) as session:
            rows = session.exec(
                page_after(select(InferenceKeyRecord), col(InferenceKeyRecord.id), after_id, limit)
            ).all()
            return [_info(r) for r in rows]

    def revoke(self, key_id: int, by: Principal) -> InferenceKeyInfo:
        with session_scope(self.engine) as session:
            record = session.get(InferenceKeyRecord, key_id)
            if record is None:
                raise NotFoundError(f"no inference key {key_id}")
            if record.revoked_at is None:
                record.revoked_at = utcnow()
                session.add(record)
                self.audit.append(
                    session,
                    actor=by.actor,
                    action="inference_key.revoke",
                    target=f"inference-key:{record.key_id}",
                    outcome="ok",
                )
            info = _info(record)
        self.changes.announce(by.actor, f"inference key {info.key_id} revoked")
        return info

    def grants_for(self, zone: str, group: str) -> dict[str, KeyGrant]:
        """The live keys of one agent group, as its signed index carries them."""
        now = utcnow()
        with Session(self.engine) as session:
            rows = session.exec(
                select(InferenceKeyRecord).where(
                    InferenceKeyRecord.zone == zone,
                    InferenceKeyRecord.group == group,
                    col(InferenceKeyRecord.revoked_at).is_(None),
                )
            ).all()
        return {
            r.key_id: KeyGrant(
                sha256=r.secret_sha256,
                certificate=r.certificate is not None,
                models=list(r.models),
                expires_at=as_utc(r.expires_at).timestamp(),
            )
            for r in rows
            if as_utc(r.expires_at) > now
        }
