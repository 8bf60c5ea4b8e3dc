"""Issue 14, finding 8: ``appliance agent enrol`` without ``--trusted-root`` committed the
enrolment, then failed to fetch the root without credentials (401): the token was used
up, the hub listed an agent the box did not have, and enrolling again gave 409.

Now the root is fetched as the new agent, nothing is kept on the box until every step
worked, and the same box may run the same enrolment again (its answer lost, its disk
full) and get the same agent back; another box with that token gets nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.identity import load_identity
from agent.updates.trusted import pinned_root
from appliance.cli.demo.processes import ServiceProcess
from appliance.client.hub import HubClient
from appliance.errors import HubRejectedError
from appliance.security import sealing
from appliance.security.keys import init_keypair, keys_dir, public_pem
from appliance.security.sealing import init_encryption_key
from appliance.wire.fleet import EnrolmentRequest

pytestmark = pytest.mark.integration


def _enrol_cli(hub: ServiceProcess, data_dir: Path, token: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "appliance",
            "agent",
            "enrol",
            "--hub",
            hub.url,
            "--data-dir",
            str(data_dir),
            "--name",
            "edge-box",
            "--enrol-token",
            token,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _request(data_dir: Path, token: str, name: str = "edge-box") -> EnrolmentRequest:
    """What ``appliance agent enrol`` sends for the box whose keys are in ``data_dir``."""
    key = init_keypair(keys_dir(data_dir), "agent")
    device = init_encryption_key(keys_dir(data_dir))
    return EnrolmentRequest(
        token=token,
        name=name,
        public_key=public_pem(key.public).decode(),
        encryption_key=sealing.public_pem(device.public_key()),
        runtime="onnxruntime",
    )


def test_enrolment_without_a_trusted_root_pins_the_hub_s_and_can_be_run_again(
    hub: ServiceProcess, admin: HubClient, tmp_path: Path
) -> None:
    box = tmp_path / "box"
    token = admin.create_enrolment_token("ae-dxb")["token"]
    # The box's first attempt reached the hub, but its answer was lost on the way back.
    with HubClient(hub.url) as anonymous:
        first = anonymous.enrol(_request(box, token))
    assert load_identity(box) is None  # the box kept nothing but its keys

    done = _enrol_cli(hub, box, token)  # the operator runs it again, same token
    assert done.returncode == 0, done.stderr
    identity = load_identity(box)
    assert identity is not None and identity.agent_id == first.id
    assert b'"_type": "root"' in pinned_root(box) or b'"_type":"root"' in pinned_root(box)
    assert [a.id for a in admin.list_agents() if a.name == "edge-box"] == [first.id]

    other = tmp_path / "other-box"  # the same token from another box: refused
    with HubClient(hub.url) as anonymous, pytest.raises(HubRejectedError) as refused:
        anonymous.enrol(_request(other, token))
    assert refused.value.status_code == 401
