"""One-time enrolment of agents, and their revocation.

An admin creates a token bound to a zone and a group; it expires and works
once. The agent sends it with a public key it generated itself and from then
on signs its own short-lived tokens with that key. The zone and group come
from the token, never from the agent.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import timedelta

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select, update

from appliance.clock import as_utc, iso_utc, utcnow
from appliance.errors import AuthenticationError, ConflictError, InvalidInputError, NotFoundError
from appliance.security.sealing import load_public_pem
from appliance.trust.layout import check_name
from appliance.wire.fleet import AgentInfo, EnrolmentRequest
from hub.audit.service import AuditLog
from hub.auth.principal import Principal
from hub.auth.secrets import sha256_hex
from hub.db import session_scope
from hub.events import Changes
from hub.fleet.certificates import SiteCertificates
from hub.fleet.records import AgentRecord, EnrolmentTokenRecord
from hub.fleet.service import agent_info
from hub.registry.service import check_model_name
from hub.residency.policy import ResidencyPolicy

MAX_TOKEN_TTL_S = 7 * 24 * 3600


class EnrolmentTokenInfo(msgspec.Struct, kw_only=True):
    token: str
    """Shown once; the hub keeps only its hash."""
    zone: str
    group: str
    expires_at: str


@dataclass
class EnrolmentService:
    engine: Engine
    policy: ResidencyPolicy
    audit: AuditLog
    changes: Changes = field(default_factory=Changes)
    """Told after an agent joins or leaves: what each group may install changes."""
    certificates: SiteCertificates = field(default_factory=lambda: SiteCertificates(None))
    """The site CA, when the hub holds it: enrolling agents get their HTTPS certificate."""

    def create_token(
        self, principal: Principal, zone: str, group: str, ttl_s: int = 24 * 3600
    ) -> EnrolmentTokenInfo:
        self.policy.check_zones([zone], "zone")
        check_name("group", group)  # it names the group's TUF role: no dots
        if not 60 <= ttl_s <= MAX_TOKEN_TTL_S:
            raise InvalidInputError(f"ttl_s: must be between 60 and {MAX_TOKEN_TTL_S} seconds")
        token = "enrol_" + secrets.token_urlsafe(24)
        expires = utcnow() + timedelta(seconds=ttl_s)
        with session_scope(self.engine) as session:
            record = EnrolmentTokenRecord(
                token_sha256=sha256_hex(token),
                zone=zone,
                group=group,
                created_by=principal.actor,
                expires_at=expires,
            )
            session.add(record)
            session.flush()
            self.audit.append(
                session,
                actor=principal.actor,
                action="agent.enrolment_token",
                target=f"token:{record.id}",
                outcome="ok",
                detail={"zone": zone, "group": group, "expires_at": iso_utc(expires)},
            )
        return EnrolmentTokenInfo(token=token, zone=zone, group=group, expires_at=iso_utc(expires))

    def enrol(self, request: EnrolmentRequest, source: str | None = None) -> AgentInfo:
        check_model_name(request.name)
        try:
            key = serialization.load_pem_public_key(request.public_key.encode())
        except ValueError as exc:
            raise InvalidInputError("public_key: not a PEM public key") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise InvalidInputError("public_key: must be an Ed25519 key")
        if request.encryption_key is not None:
            load_public_pem(request.encryption_key)  # refuses anything but X25519 PEM
        now = utcnow()
        with session_scope(self.engine) as session:
            token = session.exec(
                select(EnrolmentTokenRecord).where(
                    EnrolmentTokenRecord.token_sha256 == sha256_hex(request.token)
                )
            ).first()
            expires = as_utc(token.expires_at) if token else None
            again = self._same_enrolment(session, token, request)
            if again is not None:
                return self._with_certificate(again, request)
            if token is None or token.used_at is not None or expires is None or expires < now:
                raise AuthenticationError(
                    "enrolment token is unknown, used or expired",
                    hint="ask an admin for a new one ('appliance agent token')",
                )
            existing = session.exec(
                select(AgentRecord).where(AgentRecord.name == request.name)
            ).first()
            if existing is not None and existing.revoked_at is None:
                raise ConflictError(
                    f"an agent named {request.name!r} is already enrolled",
                    hint="choose another name, or revoke the old agent first",
                )
            if existing is not None:  # keep the revoked record and its history, renamed
                existing.name = f"{existing.name}.revoked-{existing.id}"
                session.add(existing)
                session.flush()
            agent = AgentRecord(
                name=request.name,
                zone=token.zone,
                group=token.group,
                runtime=request.runtime,
                labels=dict(request.labels),
                url=request.url,
                software_version=request.software_version,
                public_key=request.public_key,
                encryption_key=request.encryption_key,
                enrolled_at=now,
            )
            session.add(agent)
            session.flush()
            claimed = session.execute(  # single use, even against a concurrent enrolment
                update(EnrolmentTokenRecord)
                .where(
                    col(EnrolmentTokenRecord.id) == token.id,
                    col(EnrolmentTokenRecord.used_at).is_(None),
                )
                .values(used_at=now, used_by_agent_id=agent.id)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                raise AuthenticationError("enrolment token was used concurrently")
            self.audit.append(
                session,
                actor=f"agent:{agent.name}",
                action="agent.enrol",
                target=f"agent:{agent.id}",
                outcome="ok",
                source=source,
                detail={"zone": agent.zone, "group": agent.group, "token": token.id},
            )
            info = agent_info(agent)
        self.changes.announce(f"agent:{info.name}", f"agent {info.name} enrolled")
        return self._with_certificate(info, request)

    def _with_certificate(self, info: AgentInfo, request: EnrolmentRequest) -> AgentInfo:
        certificate = self.certificates.issue(request.tls_csr, request.name, request.url)
        return msgspec.structs.replace(info, tls_certificate=certificate)

    def _same_enrolment(
        self, session: Session, token: EnrolmentTokenRecord | None, request: EnrolmentRequest
    ) -> AgentInfo | None:
        """The agent this token already enrolled, when the same box asks again.

        Enrolment is atomic from the box's point of view: if anything fails after the hub
        committed (the answer was lost, the box could not fetch or write what it needs),
        the box runs it again with the same token, name and key, and gets the same agent
        back instead of a used token and a 409. Another key, name or a revoked agent gets
        nothing.
        """
        if token is None or token.used_by_agent_id is None:
            return None
        agent = session.get(AgentRecord, token.used_by_agent_id)
        if (
            agent is None
            or agent.revoked_at is not None
            or agent.name != request.name
            or agent.public_key != request.public_key
            or agent.encryption_key != request.encryption_key
        ):
            return None
        return agent_info(agent)

    def revoke(self, principal: Principal, agent_id: int) -> AgentInfo:
        with session_scope(self.engine) as session:
            agent = session.get(AgentRecord, agent_id)
            if agent is None:
                raise NotFoundError(f"no agent with id {agent_id}")
            if agent.revoked_at is None:
                agent.revoked_at = utcnow()
                session.add(agent)
                self.audit.append(
                    session,
                    actor=principal.actor,
                    action="agent.revoke",
                    target=f"agent:{agent.name}",
                    outcome="ok",
                )
            session.flush()
            info = agent_info(agent)
        self.changes.announce(principal.actor, f"agent {info.name} revoked")
        return info
