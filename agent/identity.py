"""The agent's own identity: enrolled once with a one-time token, then kept on disk.

``identity.json`` (0600) holds the id, name, zone and group the hub assigned;
``keys/agent.key`` (0600) is the Ed25519 key the agent generated for itself and
signs its tokens with; ``keys/encryption.x25519.key`` (0600) opens the models the
hub encrypts for it. Private keys never leave the box. Enrolment also pins the
TUF root the agent will trust from then on (``tuf/pinned-root.json``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.installer import DeviceKey
from agent.updates.trusted import pin_root
from appliance import __version__
from appliance.client.hub import HubClient
from appliance.errors import ConfigError
from appliance.fsutil import atomic_write_bytes
from appliance.security import sealing
from appliance.security.credentials import AgentCredentials
from appliance.security.keys import init_keypair, keys_dir, load_keypair, public_pem
from appliance.security.sealing import ENCRYPTION_KEY_NAME, init_encryption_key, load_encryption_key
from appliance.security.tls import new_signing_request, tls_dir
from appliance.wire.fleet import EnrolmentRequest

IDENTITY_FILE = "identity.json"
KEY_NAME = "agent"


@dataclass(frozen=True)
class AgentIdentity:
    agent_id: int
    name: str
    zone: str
    group: str
    hub_url: str


def identity_path(data_dir: Path) -> Path:
    return data_dir / IDENTITY_FILE


def load_identity(data_dir: Path) -> AgentIdentity | None:
    try:
        return AgentIdentity(**json.loads(identity_path(data_dir).read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{identity_path(data_dir)} is damaged", hint="enrol the agent again with a new token"
        ) from exc


TLS_NAME = "agent"
"""``tls/agent.key`` (made at enrolment, never leaves the box) and ``tls/agent.crt``."""


def tls_certificate(data_dir: Path) -> Path:
    """The agent's HTTPS certificate from the site CA, if enrolment brought one."""
    return tls_dir(data_dir) / f"{TLS_NAME}.crt"


def tls_key(data_dir: Path) -> Path:
    return tls_dir(data_dir) / f"{TLS_NAME}.key"


def credentials(data_dir: Path, identity: AgentIdentity) -> AgentCredentials:
    return AgentCredentials(load_keypair(keys_dir(data_dir), KEY_NAME), identity.agent_id)


def enrol(
    client: HubClient,
    data_dir: Path,
    *,
    token: str,
    name: str,
    runtime: str,
    labels: dict[str, str] | None = None,
    url: str | None = None,
    trusted_root: bytes | None = None,
) -> AgentIdentity:
    """Generate this agent's keys, enrol with the hub, keep the identity, pin the TUF root.

    Without ``trusted_root`` (the installer's copy), the hub's current root is
    pinned, fetched over the channel enrolment itself trusts (the site CA), as the
    newly enrolled agent. Nothing is kept on the box until every step has worked; a
    failure after the hub enrolled the agent is mended by running this again with the
    same token (the hub answers the same box with the same agent).
    """
    key = init_keypair(keys_dir(data_dir), KEY_NAME)
    device = init_encryption_key(keys_dir(data_dir))
    info = client.enrol(
        EnrolmentRequest(
            token=token,
            name=name,
            public_key=public_pem(key.public).decode(),
            encryption_key=sealing.public_pem(device.public_key()),
            runtime=runtime,
            labels=labels or {},
            url=url,
            software_version=__version__,
            tls_csr=new_signing_request(tls_dir(data_dir), TLS_NAME).decode(),
        )
    )
    identity = AgentIdentity(
        agent_id=info.id, name=info.name, zone=info.zone, group=info.group, hub_url=client.base_url
    )
    if trusted_root is None:
        anonymous = client.credentials
        client.credentials = AgentCredentials(key, info.id)
        try:
            trusted_root = client.trusted_root()
        finally:
            client.credentials = anonymous
    pin_root(data_dir, trusted_root)
    if info.tls_certificate:
        atomic_write_bytes(tls_certificate(data_dir), info.tls_certificate.encode(), mode=0o644)
    atomic_write_bytes(
        identity_path(data_dir), json.dumps(asdict(identity), indent=2).encode(), mode=0o600
    )
    return identity


def device_key(data_dir: Path, identity: AgentIdentity) -> DeviceKey:
    """What opens the models encrypted for this agent (no key file: it cannot open any)."""
    folder = keys_dir(data_dir)
    present = (folder / f"{ENCRYPTION_KEY_NAME}.x25519.key").exists()
    private = load_encryption_key(folder) if present else None
    return DeviceKey(agent_id=identity.agent_id, private=private)
