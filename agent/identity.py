"""The agent's own identity: enrolled once with a one-time token, then kept on disk.

``identity.json`` (0600) holds the id, name, zone and group the hub assigned;
``keys/agent.key`` (0600) is the Ed25519 key the agent generated for itself and
signs its tokens with. The private key never leaves the box.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from appliance import __version__
from appliance.credentials import AgentCredentials
from appliance.errors import ConfigError
from appliance.fsutil import atomic_write_bytes
from appliance.hub_client import HubClient
from appliance.keys import init_keypair, keys_dir, load_keypair, public_pem
from appliance.schemas import EnrolmentRequest

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
) -> AgentIdentity:
    """Generate this agent's key, enrol with the hub, and keep the identity it gives."""
    key = init_keypair(keys_dir(data_dir), KEY_NAME)
    info = client.enrol(
        EnrolmentRequest(
            token=token,
            name=name,
            public_key=public_pem(key.public).decode(),
            runtime=runtime,
            labels=labels or {},
            url=url,
            software_version=__version__,
        )
    )
    identity = AgentIdentity(
        agent_id=info.id, name=info.name, zone=info.zone, group=info.group, hub_url=client.base_url
    )
    atomic_write_bytes(
        identity_path(data_dir), json.dumps(asdict(identity), indent=2).encode(), mode=0o600
    )
    return identity
