"""A real uvicorn server on loopback, serving TLS with certificates from the site CA.

Each server runs in a background thread on a free port, configured only through
``server_tls_options``; clients are plain ``httpx.Client``s given
``client_ssl_context``, as the hub client and agents will be.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from appliance.cli.demo.processes import free_port, wait_for
from appliance.security.tls import (
    CertAuthority,
    CertificateFiles,
    client_ssl_context,
    init_ca,
    issue_client_cert,
    issue_server_cert,
    server_tls_options,
)

pytestmark = pytest.mark.integration


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers every request with the scheme it arrived over."""
    assert scope["type"] == "http"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": scope["scheme"].encode()})


@dataclass(frozen=True)
class Pki:
    ca: CertAuthority
    other_ca: CertAuthority
    hub: CertificateFiles
    agent: CertificateFiles
    stranger: CertificateFiles
    """A client certificate issued by the other CA."""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ca = init_ca(root / "ca")
    other_ca = init_ca(root / "other-ca", common_name="Some other CA")
    return Pki(
        ca=ca,
        other_ca=other_ca,
        hub=issue_server_cert(ca, root / "tls", "hub"),
        agent=issue_client_cert(ca, root / "agent", "agent-1"),
        stranger=issue_client_cert(other_ca, root / "stranger", "agent-1"),
    )


def _serve(options: dict[str, Any]) -> Iterator[str]:
    """Run uvicorn in a thread with ``options``; yield its https URL; stop it."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", log_level="critical", **options
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        wait_for("the TLS test server", lambda: server.started or not thread.is_alive(), 10.0)
        assert server.started, "uvicorn exited during start-up"
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10.0)


@pytest.fixture(scope="module")
def tls_url(pki: Pki) -> Iterator[str]:
    yield from _serve(dict(server_tls_options(*pki.hub)))


@pytest.fixture(scope="module")
def mtls_url(pki: Pki) -> Iterator[str]:
    options = server_tls_options(*pki.hub, client_ca=pki.ca.cert_path, require_client_cert=True)
    yield from _serve(dict(options))


def _get(url: str, verify: ssl.SSLContext | bool, **kwargs: Any) -> httpx.Response:
    with httpx.Client(verify=verify, timeout=5.0) as client:
        return client.get(url, **kwargs)


# -- server authentication ---------------------------------------------------------------


def test_client_pinned_to_the_site_ca_connects_by_ip_and_by_name(pki, tls_url):
    context = client_ssl_context(pki.ca.cert_path)
    assert _get(tls_url, context).text == "https"
    assert _get(tls_url.replace("127.0.0.1", "localhost"), context).text == "https"


def test_client_pinned_to_another_ca_is_refused(pki, tls_url):
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        _get(tls_url, client_ssl_context(pki.other_ca.cert_path))


def test_client_with_the_default_trust_store_is_refused(tls_url):
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        _get(tls_url, True)


def test_host_name_not_in_the_certificate_is_refused(pki, tls_url):
    context = client_ssl_context(pki.ca.cert_path)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        _get(tls_url, context, extensions={"sni_hostname": "elsewhere.example"})


def test_plain_http_to_the_tls_port_gets_no_answer(pki, tls_url):
    assert _get(tls_url, client_ssl_context(pki.ca.cert_path)).status_code == 200
    with pytest.raises(httpx.RemoteProtocolError):
        _get(tls_url.replace("https://", "http://"), False)


# -- mutual TLS --------------------------------------------------------------------------


def _agent_context(pki: Pki, files: CertificateFiles | None) -> ssl.SSLContext:
    if files is None:
        return client_ssl_context(pki.ca.cert_path)
    return client_ssl_context(
        pki.ca.cert_path, client_cert=files.certificate, client_key=files.private_key
    )


def test_mutual_tls_accepts_a_client_certificate_from_the_site_ca(pki, mtls_url):
    assert _get(mtls_url, _agent_context(pki, pki.agent)).text == "https"


@pytest.mark.parametrize(
    "offered",
    [
        pytest.param(None, id="no-certificate"),
        pytest.param("stranger", id="issued-by-another-ca"),
        pytest.param("hub", id="server-certificate-without-clientAuth"),
    ],
)
def test_mutual_tls_refuses_clients_without_a_site_client_certificate(pki, mtls_url, offered):
    context = _agent_context(pki, getattr(pki, offered) if offered else None)
    assert _get(mtls_url, _agent_context(pki, pki.agent)).status_code == 200  # the server is up
    # TLS 1.3 clients finish their side of the handshake first; the server then hangs up.
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError)):
        _get(mtls_url, context)
