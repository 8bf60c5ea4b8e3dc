"""A real hub's update service and real agent data folders, joined by an in-process fetcher.

In the manner of python-tuf's ``RepositorySimulator``: the agent's real
``tuf.ngclient`` client fetches through :class:`SiteFetcher` (a
``FetcherInterface``), which asks the hub's real :class:`UpdateService` for
metadata and targets as an agent principal, and lets a test replace or corrupt
any answer on the way, as an attacker on the network or the hub's disk would.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tuf.api import exceptions
from tuf.ngclient.fetcher import FetcherInterface

from agent.identity import AgentIdentity, identity_path
from agent.installer import InstallPolicy
from agent.updates.trusted import TrustedUpdates, pin_root
from appliance.errors import NotFoundError
from appliance.fsutil import atomic_write_bytes
from appliance.security.keys import init_keypair, keys_dir, public_pem
from appliance.security.sealing import init_encryption_key
from appliance.security.sealing import public_pem as x25519_pem
from appliance.settings import HubSettings, ScheduleSettings
from appliance.wire.fleet import EnrolmentRequest
from hub.auth.principal import Principal
from hub.auth.roles import AGENT_PERMISSIONS, permissions_for
from hub.services import HubServices, build_services
from tests.harness.models import make_reference_npy, make_tiny_onnx

ZONE = "ae-dxb"
HUB_URL = "sim:"
METADATA_URL = f"{HUB_URL}/tuf/metadata/"
TARGETS_URL = f"{HUB_URL}/tuf/targets/"


def _user(user_id: int, name: str, role: str) -> Principal:
    return Principal(
        kind="user",
        id=user_id,
        name=name,
        roles=frozenset({role}),
        permissions=permissions_for({role}),
    )


ALICE = _user(1, "alice", "ml-engineer")
OMAR = _user(2, "omar", "approver")
ADMIN = _user(3, "root", "admin")
POLICY = InstallPolicy(runtime="onnxruntime", threads=1)

Mutator = Callable[[str, bytes], bytes]


def model_bytes(scale: float) -> bytes:
    """A tiny classifier whose weights differ per version, so outputs tell versions apart."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(make_tiny_onnx())
    weights = numpy_helper.to_array(model.graph.initializer[0]) * scale
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(weights, "weights"))
    return bytes(model.SerializeToString())


def hub_services(data_dir: Path) -> HubServices:
    never = ScheduleSettings(audit_checkpoint_minutes=0)
    return build_services(HubSettings(data_dir=data_dir, schedule=never))


def release(services: HubServices, version_scale: float, name: str = "tiny") -> int:
    """Register a version and put it into production, as alice and omar would."""
    info = services.registry.register_version(
        name, model_bytes(version_scale), reference_npy=make_reference_npy(), actor=ALICE.actor
    )
    services.registry.change_stage(name, info.version, "staging", by=ALICE)
    services.registry.change_stage(name, info.version, "production", by=OMAR)
    return info.version


def enrol_agent(
    services: HubServices, data_dir: Path, name: str, group: str = "default"
) -> AgentIdentity:
    """An agent's data folder as ``appliance agent enrol`` leaves it (keys, identity, root)."""
    token = services.enrolment.create_token(ADMIN, ZONE, group).token
    key = init_keypair(keys_dir(data_dir), "agent")
    device = init_encryption_key(keys_dir(data_dir))
    info = services.enrolment.enrol(
        EnrolmentRequest(
            token=token,
            name=name,
            public_key=public_pem(key.public).decode(),
            runtime="onnxruntime",
            encryption_key=x25519_pem(device.public_key()),
        )
    )
    identity = AgentIdentity(
        agent_id=info.id, name=info.name, zone=info.zone, group=info.group, hub_url=HUB_URL
    )
    atomic_write_bytes(identity_path(data_dir), json.dumps(asdict(identity)).encode(), mode=0o600)
    pin_root(data_dir, services.updates.repository.root_bytes(1))
    return identity


def principal_for(identity: AgentIdentity) -> Principal:
    return Principal(
        kind="agent",
        id=identity.agent_id,
        name=identity.name,
        roles=frozenset(),
        permissions=AGENT_PERMISSIONS,
        zone=identity.zone,
        group=identity.group,
    )


@dataclass
class SiteFetcher(FetcherInterface):
    """The hub as an agent sees it, with an attacker's hooks on every answer."""

    services: HubServices
    principal: Principal
    mutate: dict[str, Mutator] = field(default_factory=dict)
    """URL suffix → function of (url, honest bytes) giving what is served instead."""
    replace: dict[str, Callable[[], Iterator[bytes]]] = field(default_factory=dict)
    """URL suffix → a stream served instead (endless, stalled, …)."""
    requests: list[str] = field(default_factory=list)

    def _fetch(self, url: str) -> Iterator[bytes]:
        self.requests.append(url)
        for suffix, stream in self.replace.items():
            if url.endswith(suffix):
                return stream()
        try:
            if url.startswith(METADATA_URL):
                path = self.services.updates.metadata_file(
                    self.principal, url.removeprefix(METADATA_URL)
                )
            else:
                path = self.services.updates.target_file(
                    self.principal, url.removeprefix(TARGETS_URL)
                )
            data = path.read_bytes()
        except NotFoundError as exc:
            raise exceptions.DownloadHTTPError(str(exc), 404) from exc
        for suffix, mutator in self.mutate.items():
            if url.endswith(suffix):
                data = mutator(url, data)
        return iter([data])


def updates_for(
    data_dir: Path, identity: AgentIdentity, fetcher: FetcherInterface
) -> TrustedUpdates:
    return TrustedUpdates(
        data_dir,
        root=(data_dir / "tuf" / "pinned-root.json").read_bytes(),
        fetcher=fetcher,
        metadata_url=METADATA_URL,
        targets_url=TARGETS_URL,
        zone=identity.zone,
        group=identity.group,
        agent_id=identity.agent_id,
    )


def build_golden(root: Path, *agents: tuple[str, str]) -> Path:
    """A hub with tiny v1 in production and agents enrolled (name, group): copied per test."""
    services = hub_services(root / "hub")
    for name, group in agents or (("edge-1", "default"),):
        folder = root / ("agent" if name == "edge-1" else f"{group}-agent")
        enrol_agent(services, folder, name, group=group)
    release(services, 1.0)
    services.engine.dispose()
    return root


def copy_site(golden: Path, dest: Path) -> Path:
    shutil.copytree(golden, dest, symlinks=True)
    return dest
