"""Issue 14, finding 6 (transport): agents served plain HTTP on 0.0.0.0, so inference keys
and answers crossed the network in the clear.

Now an agent sends a certificate signing request with its enrolment and the hub, holding
the site CA, answers with an HTTPS certificate for it; the agent serves HTTPS with it and
refuses to start without one unless told ``--plain-http``.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from pathlib import Path
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
from appliance.security.tls import (
    client_ssl_context,
    init_ca,
    issue_client_cert,
    load_ca,
    new_signing_request,
)
from appliance.wire.fleet import NewInferenceKey
from tests.harness.cli import appliance
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
    start_test_agent: Any,
    workdir: Any,
) -> None:
    ca_file = site.hub_dir / "ca" / "ca.crt"
    publish(engineer, approver)
    agent = start_test_agent("secure", plain_http=False, open_data_plane=False, hub_ca=ca_file)
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


def test_a_client_certificate_from_the_site_ca_is_the_alternative_to_an_inference_key(
    site: Site,
    hub: ServiceProcess,
    admin: HubClient,
    engineer: HubClient,
    approver: HubClient,
    start_test_agent: Any,
    tmp_path: Path,
) -> None:
    """Mutual TLS as the data plane's other credential: an admin issues a client
    certificate with the command line (the private key is made on the admin's box and
    never sent); a stock Triton client presents it to the agent and is answered; it is
    scoped to its models like a key, and revoking it stops it."""
    ca_file = site.hub_dir / "ca" / "ca.crt"
    publish(engineer, approver)
    agent = start_test_agent("mtls", plain_http=False, open_data_plane=False, hub_ca=ca_file)
    env = {**os.environ, "APPLIANCE_SESSION_FILE": str(tmp_path / "session.json")}
    signed_in = appliance(
        "login",
        "--hub",
        hub.url,
        "--username",
        "admin",
        "--password-stdin",
        env=env,
        stdin=site.passwords["admin"] + "\n",
    )
    assert signed_in.returncode == 0, signed_in.stderr
    issued = appliance(
        "inference-key",
        "create",
        "--name",
        "clinic-app",
        "--zone",
        "ae-dxb",
        "--model",
        MODEL,
        "--certificate-out",
        str(tmp_path / "app"),
        env=env,
    )
    assert issued.returncode == 0, issued.stderr
    assert "client certificate" in issued.stdout
    cert, key = tmp_path / "app" / "clinic-app.crt", tmp_path / "app" / "clinic-app.key"
    assert key.stat().st_mode & 0o777 == 0o600
    listed = next(k for k in admin.list_inference_keys() if k.name == "clinic-app")
    assert listed.key is None and listed.certificate == cert.read_text()

    with_cert = client_ssl_context(ca_file, client_cert=cert, client_key=key)
    infer = f"{agent.url}/v2/models/{MODEL}/infer"

    def status(verify: ssl.SSLContext, path: str = infer) -> int:
        if path.endswith("/infer"):
            return httpx.post(path, json=BODY, verify=verify, timeout=5).status_code
        return httpx.get(path, verify=verify, timeout=5).status_code

    wait_until("the certificate's grant to reach the agent", lambda: status(with_cert) == 200)
    assert status(client_ssl_context(ca_file)) == 401  # no credential at all
    assert status(with_cert, f"{agent.url}/v2/models/other") == 403  # scoped to its models
    client = triton.InferenceServerClient(
        agent.url.removeprefix("https://"),
        ssl=True,
        ssl_options={"ca_certs": str(ca_file), "certfile": str(cert), "keyfile": str(key)},
    )
    x = triton.InferInput("input", [1, 4], "FP32")
    x.set_data_from_numpy(np.ones((1, 4), np.float32), binary_data=False)
    out = triton.InferRequestedOutput("probabilities", binary_data=False)
    assert client.infer(MODEL, [x], outputs=[out]).as_numpy("probabilities").shape == (1, 2)

    # A certificate the site CA issued for something else (here an agent's, for the hub's
    # mutual TLS) is verified in the handshake but is no inference credential.
    other = issue_client_cert(load_ca(site.hub_dir / "ca"), tmp_path / "other", "agent-9")
    assert (
        status(
            client_ssl_context(ca_file, client_cert=other.certificate, client_key=other.private_key)
        )
        == 401
    )
    # One from another CA does not get past the handshake.
    stranger = issue_client_cert(init_ca(tmp_path / "stranger-ca"), tmp_path / "s", "app")
    with pytest.raises(httpx.HTTPError):
        status(
            client_ssl_context(
                ca_file, client_cert=stranger.certificate, client_key=stranger.private_key
            )
        )

    admin.revoke_inference_key(listed.id)
    wait_until("the revocation to reach the agent", lambda: status(with_cert) == 401)


def test_grpc_takes_the_same_tls_and_credentials_as_http(
    site: Site,
    hub: ServiceProcess,
    admin: HubClient,
    engineer: HubClient,
    approver: HubClient,
    start_test_agent: Any,
    tmp_path: Path,
) -> None:
    """Issue 14 (gRPC ``authorization`` metadata) and 15: the agent's gRPC port serves TLS
    with its site certificate; inference needs an inference key in the ``authorization``
    metadata or a client certificate the hub issued, exactly as over HTTP."""
    import tritonclient.grpc as triton_grpc
    from tritonclient.utils import InferenceServerException

    ca_file = site.hub_dir / "ca" / "ca.crt"
    publish(engineer, approver)
    agent = start_test_agent("grpc-tls", plain_http=False, open_data_plane=False, hub_ca=ca_file)
    assert agent.grpc_address
    key = admin.create_inference_key(
        NewInferenceKey(name="grpc-app", zone="ae-dxb", models=[MODEL], days=1)
    ).key
    csr = new_signing_request(tmp_path / "app", "grpc-cert-app").decode()
    issued = admin.create_inference_key(
        NewInferenceKey(name="grpc-cert-app", zone="ae-dxb", models=[MODEL], days=1, csr=csr)
    )
    assert key is not None and issued.certificate is not None
    cert = tmp_path / "app" / "grpc-cert-app.crt"
    cert.write_text(issued.certificate)

    def client(**files: str) -> Any:
        return triton_grpc.InferenceServerClient(
            agent.grpc_address, ssl=True, root_certificates=str(ca_file), **files
        )

    def infer(grpc_client: Any, headers: dict[str, str] | None = None) -> Any:
        x = triton_grpc.InferInput("input", [1, 4], "FP32")
        x.set_data_from_numpy(np.ones((1, 4), np.float32))
        return grpc_client.infer(MODEL, [x], headers=headers)

    plain = client()
    assert plain.is_server_live()  # health needs no credential, as on HTTP
    wait_until(
        "the key to reach the agent",
        lambda: _grpc_ok(lambda: infer(plain, {"authorization": f"Bearer {key}"})),
    )
    assert infer(plain, {"authorization": f"Bearer {key}"}).as_numpy("probabilities").shape == (
        1,
        2,
    )
    with pytest.raises(InferenceServerException) as anonymous:
        infer(plain)
    assert anonymous.value.status() == "StatusCode.UNAUTHENTICATED"
    with pytest.raises(InferenceServerException) as wrong:
        infer(plain, {"authorization": f"Bearer {key[:-1]}x"})
    assert wrong.value.status() == "StatusCode.UNAUTHENTICATED"
    cert_files = {
        "private_key": str(tmp_path / "app" / "grpc-cert-app.key"),
        "certificate_chain": str(cert),
    }
    with pytest.raises(InferenceServerException) as unasked:
        infer(client(**cert_files))  # this agent does not ask gRPC clients for one
    assert unasked.value.status() == "StatusCode.UNAUTHENTICATED"

    # Mutual TLS on gRPC: every client presents a site certificate, and the hub's counts.
    mutual = start_test_agent(
        "grpc-mtls",
        plain_http=False,
        open_data_plane=False,
        hub_ca=ca_file,
        env={"APPLIANCE_GRPC_CLIENT_CERTS": "true"},
    )
    assert mutual.grpc_address
    with_cert = triton_grpc.InferenceServerClient(
        mutual.grpc_address, ssl=True, root_certificates=str(ca_file), **cert_files
    )
    wait_until("the certificate's grant", lambda: _grpc_ok(lambda: infer(with_cert)))
    assert infer(with_cert).as_numpy("probabilities").shape == (1, 2)
    with pytest.raises(InferenceServerException) as other_model:
        with_cert.get_model_metadata("other")
    assert other_model.value.status() == "StatusCode.PERMISSION_DENIED"
    without = triton_grpc.InferenceServerClient(
        mutual.grpc_address, ssl=True, root_certificates=str(ca_file)
    )
    with pytest.raises(InferenceServerException):  # no certificate: no handshake
        infer(without, {"authorization": f"Bearer {key}"})


def _grpc_ok(call: Any) -> bool:
    from tritonclient.utils import InferenceServerException

    try:
        call()
    except InferenceServerException:
        return False
    return True
