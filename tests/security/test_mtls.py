"""Mutual TLS: a hub that requires client certificates from the site CA."""

from __future__ import annotations

import httpx
import pytest

from appliance.cli.demo.processes import agent_process, hub_process, wait_for
from appliance.cli.demo.site import bootstrap_site
from appliance.client.hub import HubClient
from appliance.security.credentials import UserCredentials
from appliance.security.tls import client_ssl_context, issue_client_cert, load_ca
from tests.harness.site import publish

pytestmark = pytest.mark.integration


def test_agent_with_a_site_certificate_enrols_and_syncs_and_strangers_are_refused(tmp_path):
    site = bootstrap_site(tmp_path)
    assert site.tls is not None
    ca = load_ca(tmp_path / "ca")
    _cert, _key, ca_file = site.tls
    hub = hub_process(
        site.hub_dir,
        tls=site.tls,
        extra_args=("--client-ca", str(ca_file), "--require-client-cert"),
    )
    operator_cert = issue_client_cert(ca, tmp_path / "operator", "operator")
    agent_cert = issue_client_cert(ca, tmp_path / "agent-tls", "mtls-1")
    context = client_ssl_context(
        ca_file, client_cert=operator_cert.certificate, client_key=operator_cert.private_key
    )
    hub.ca_file = None  # health checks below use the operator's context instead
    hub.start()
    agent = None
    try:
        wait_for("hub over mutual TLS", lambda: _health(hub.url, context), timeout=60)
        without_cert = client_ssl_context(ca_file)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{hub.url}/health", verify=without_cert, timeout=5)

        def signed_in(user: str) -> HubClient:
            with HubClient(hub.url, verify=context) as anonymous:
                tokens = anonymous.sign_in(user, site.passwords[user])
            creds = UserCredentials(tokens["access_token"], tokens["refresh_token"], hub.url)
            return HubClient(hub.url, credentials=creds, verify=context)

        admin, engineer, approver = (signed_in(u) for u in ("admin", "alice", "omar"))
        agent = agent_process(
            "mtls-1",
            tmp_path / "mtls-1",
            hub.url,
            site.trusted_root,
            enrol_token=admin.create_enrolment_token("ae-dxb")["token"],
            hub_ca=ca_file,
            open_data_plane=True,  # this test is about the agent's mTLS to the hub
            plain_http=True,
        )
        agent.args += [
            "--client-cert",
            str(agent_cert.certificate),
            "--client-key",
            str(agent_cert.private_key),
        ]
        agent.start()
        agent.wait_healthy()
        publish(engineer, approver)
        wait_for(
            "agent to serve over mTLS",
            lambda: httpx.get(f"{agent.url}/v2/models/tiny", timeout=2).status_code == 200,
        )
    finally:
        if agent is not None:
            agent.stop()
        hub.stop()


def _health(url: str, context: object) -> bool:
    try:
        return httpx.get(f"{url}/health", verify=context, timeout=2).status_code == 200  # type: ignore[arg-type]
    except httpx.HTTPError:
        return False
