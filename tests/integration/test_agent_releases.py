"""Issue 16: the hub holds signed agent releases for agents to upgrade to.

A real hub with a pinned release key (``APPLIANCE_RELEASE_KEY``), and release archives
in the build's format, signed with real Ed25519 keys: the pinned one, and a stranger's.
An admin uploads; only an archive the pinned key signed, whose manifest names an agent
release, is kept; every refusal is audited and leaves nothing behind; an enrolled agent
downloads it byte for byte; an engineer may not.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.cli.demo.processes import ServiceProcess
from appliance.cli.demo.site import Site
from appliance.client.hub import HubClient
from appliance.errors import HubRejectedError
from appliance.security.credentials import AgentCredentials
from appliance.security.keys import KeyPair, init_keypair, public_pem
from appliance.wire.fleet import AgentReleaseInfo, EnrolmentRequest
from tests.harness.cli import appliance
from tests.harness.releases import signed_release
from tests.harness.site import running_hub

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def release_key(workdir: Path) -> KeyPair:
    return init_keypair(workdir / "release-key", "release")


@pytest.fixture(scope="module")
def hub(site: Site, workdir: Path, release_key: KeyPair) -> Iterator[ServiceProcess]:
    pinned = workdir / "release-key" / "release.pub"
    with running_hub(site, env={"APPLIANCE_RELEASE_KEY": str(pinned)}) as proc:
        yield proc


def upload(client: HubClient, path: Path) -> AgentReleaseInfo:
    with path.open("rb") as handle:
        return client.upload_agent_release(handle)


def refused_uploads(admin: HubClient) -> list[str]:
    return [
        str(e["detail"].get("reason", ""))
        for e in admin.list_audit(action="agent_release.upload", limit=100)
        if e["outcome"] == "refused"
    ]


def test_a_release_signed_with_the_pinned_key_is_kept_and_agents_download_it(
    hub: ServiceProcess,
    admin: HubClient,
    engineer: HubClient,
    release_key: KeyPair,
    workdir: Path,
    tmp_path: Path,
) -> None:
    made = signed_release(tmp_path, release_key, "0.2.0")
    info = upload(admin, made)
    assert info.version == "0.2.0" and info.name == "appliance-agent-0.2.0"
    assert info.archive_sha256 == hashlib.sha256(made.read_bytes()).hexdigest()
    assert info.uploaded_by == "user:admin"
    assert upload(admin, made) == info  # the same build again: nothing changes
    assert [r.version for r in admin.list_agent_releases()] == ["0.2.0"]
    audited = admin.list_audit(action="agent_release.upload", limit=100)
    assert [e["outcome"] for e in audited] == ["ok"]
    with pytest.raises(HubRejectedError) as other_build:
        upload(admin, signed_release(tmp_path, release_key, "0.2.0", extra=b"rebuilt"))
    assert other_build.value.status_code == 409 and "another build" in str(other_build.value)

    token = admin.create_enrolment_token("ae-dxb")["token"]
    key = init_keypair(workdir / "agent-keys", "agent")
    request = EnrolmentRequest(
        token=token, name="edge-rel", public_key=public_pem(key.public).decode(), runtime="onnx"
    )
    with HubClient(hub.url) as anonymous:
        agent = anonymous.enrol(request)
    with HubClient(hub.url, credentials=AgentCredentials(key, agent.id)) as as_agent:
        said = as_agent.download_agent_release("0.2.0", tmp_path / "got.tar")
    assert (tmp_path / "got.tar").read_bytes() == made.read_bytes()
    assert said == info.archive_sha256

    with pytest.raises(HubRejectedError) as forbidden:
        engineer.download_agent_release("0.2.0", tmp_path / "no.tar")
    assert forbidden.value.status_code == 403
    with pytest.raises(HubRejectedError) as not_admin:
        upload(engineer, made)
    assert not_admin.value.status_code == 403


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        ("stranger", 422, "does not verify with the pinned release key"),
        ("hub", 422, "not an agent release"),
        ("tampered", 422, "wheels/appliance-0-py3-none-any.whl"),
        ("not-a-tar", 422, "not a readable tar archive"),
    ],
)
def test_archives_the_pinned_key_did_not_sign_as_agent_releases_are_refused(
    hub: ServiceProcess,
    site: Site,
    admin: HubClient,
    release_key: KeyPair,
    tmp_path: Path,
    case: str,
    status: int,
    reason: str,
) -> None:
    if case == "stranger":
        path = signed_release(tmp_path, init_keypair(tmp_path / "stranger", "release"), "6.6.6")
    elif case == "hub":
        path = signed_release(tmp_path, release_key, "6.6.6", kind="hub")
    elif case == "tampered":
        path = signed_release(tmp_path, release_key, "6.6.6")
        data = bytearray(path.read_bytes())
        at = data.index(b"PK" + bytes(range(8)))
        data[at + 5] ^= 0xFF  # one byte of a listed file
        path.write_bytes(bytes(data))
    else:
        path = tmp_path / "junk.tar"
        path.write_bytes(b"not a tar at all" * 100)
    before = len(refused_uploads(admin))

    with pytest.raises(HubRejectedError) as refused:
        upload(admin, path)

    assert refused.value.status_code == status
    assert reason in str(refused.value)
    assert "6.6.6" not in [r.version for r in admin.list_agent_releases()]
    reasons = refused_uploads(admin)
    assert len(reasons) == before + 1 and reason in reasons[-1]
    held = {p.name for p in (site.hub_dir / "agent-releases").iterdir()}
    assert held <= {"appliance-agent-0.2.0.tar"}  # nothing of the refused one, half or whole


def test_the_cli_uploads_a_release_and_lists_it(
    hub: ServiceProcess, site: Site, release_key: KeyPair, tmp_path: Path
) -> None:
    env = {**os.environ, "APPLIANCE_SESSION_FILE": str(tmp_path / "session.json")}
    signed_in = appliance(
        *("login", "--hub", hub.url, "--username", "admin", "--password-stdin"),
        env=env,
        stdin=site.passwords["admin"] + "\n",
    )
    assert signed_in.returncode == 0, signed_in.stderr
    made = signed_release(tmp_path, release_key, "0.3.0")

    uploaded = appliance("agent-release", "upload", str(made), env=env)
    assert uploaded.returncode == 0, uploaded.stderr
    assert "the hub holds agent release 0.3.0" in uploaded.stdout
    listed = appliance("agent-release", "list", env=env)
    assert listed.returncode == 0 and "0.3.0" in listed.stdout

    missing = appliance("agent-release", "upload", str(tmp_path / "nothing.tar"), env=env)
    assert missing.returncode != 0 and "no archive at" in missing.stderr
    assert "Traceback" not in missing.stderr
