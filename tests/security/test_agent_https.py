"""Issue 14, finding 6 (transport): agents served plain HTTP on 0.0.0.0, so inference keys
and answers crossed the network in the clear.

Now an agent sends a certificate signing request with its enrolment and the hub, holding
the site CA, answers with an HTTPS certificate for it; the agent serves HTTPS with it and
refuses to start without one unless told ``--plain-http``.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from cryptography import x509

from agent.identity import tls_certificate
from appliance.cli.demo.processes import ProcessStartError, ServiceProcess
from appliance.cli.demo.site import Site
from appliance.client.hub import HubClient
from appliance.security.tls import client_ssl_context, init_ca
from appliance.wire.fleet import NewInferenceKey
from tests.harness.site import MODEL, publish, running_hub, wait_until

pytestmark = pytest.mark.integration

BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}


@pytest.fixture(scope="module")
def hub(site: Site) -> Iterator[ServiceProcess]:
    """This module's hub holds the site CA in its data directory, as 'appliance ca init'
    leaves it: enrolling agents get their HTTPS certificates from it."""
    init_ca(site.hub_dir / "ca")
    with running_hub(site) as proc:
        yield proc


def test_agents_serve_https_with_a_certificate_from_the_site_ca(
    site: Site,
    hub: ServiceProcess,
    admin: HubClient,
    engineer: HubClient,
    approver: HubClient,
    start_agent: Any,
    workdir: Any,
) -> None:
    ca_file = site.hub_dir / "ca" / "ca.crt"
    publish(engineer, approver)
    agent = start_agent("secure", plain_http=False, open_data_plane=False, hub_ca=ca_file)
    assert agent.url.startswith("https://")
    pinned = client_ssl_context(ca_file)
    key = admin.create_inference_key(NewInferenceKey(name="app", zone="ae-dxb", days=1)).key
    headers = {"authorization": f"Bearer {key}"}

    def answered() -> bool:
        url = f"{agent.url}/v2/models/{MODEL}/infer"
        return httpx.post(url, json=BODY, headers=headers, verify=pinned, timeout=5).is_success

    wait_until("an HTTPS answer", answered)
    certificate = x509.load_pem_x509_certificate(tls_certificate(workdir / "secure").read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "secure" in names.get_values_for_type(x509.DNSName)
    assert (workdir / "secure" / "tls" / "agent.key").stat().st_mode & 0o777 == 0o600
    listed = next(a for a in admin.list_agents() if a.name == "secure")
    assert listed.url is not None and listed.url.startswith("https://")

    with pytest.raises(httpx.HTTPError):  # plain HTTP on the same port: no answer
        httpx.post(
            agent.url.replace("https://", "http://") + f"/v2/models/{MODEL}/infer",
            json=BODY,
            timeout=5,
        )
    with pytest.raises(httpx.ConnectError):  # the system's store does not know the site CA
        httpx.get(f"{agent.url}/v2/health/live", verify=ssl.create_default_context(), timeout=5)

    client = triton.InferenceServerClient(
        agent.url.removeprefix("https://"), ssl=True, ssl_options={"ca_certs": str(ca_file)}
    )
    x = triton.InferInput("input", [1, 4], "FP32")
    x.set_data_from_numpy(np.ones((1, 4), np.float32), binary_data=False)
    out = triton.InferRequestedOutput("probabilities", binary_data=False)
    answer = client.infer(MODEL, [x], outputs=[out], headers=headers)
    assert answer.as_numpy("probabilities").shape == (1, 2)

    # Without its certificate, and not told --plain-http, the agent will not start.
    agent.stop()
    tls_certificate(workdir / "secure").unlink()
    with pytest.raises(ProcessStartError):
        agent.start()
        agent.wait_healthy(timeout=30)
    assert "no HTTPS certificate" in agent.log_tail(40)
