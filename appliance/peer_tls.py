"""The client's TLS certificate in each request's scope: the ASGI TLS extension.

uvicorn checks a client certificate during the handshake (against the CA it is given)
but does not tell the application which one was presented. :class:`PeerCertificateProtocol`
is uvicorn's own HTTP protocol (as :mod:`appliance.http_protocol` runs it) that, on a
connection whose client presented a verified certificate, puts it in every request's
``scope["extensions"]["tls"]`` the way the ASGI TLS extension specifies
(``client_cert_chain``: PEM strings, the client's first).
:func:`appliance.asgi.client_certificate_sha256` reads it back on the application's side.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from appliance.asgi import ASGIApp, Receive, Scope, Send
from appliance.http_protocol import HttpProtocol


class PeerCertificateProtocol(HttpProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            tls = {
                "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)],
                "client_cert_name": None,
                "client_cert_error": None,
                "tls_version": None,
                "cipher_suite": None,
            }
            self.app = _with_tls(self.app, tls)


def _with_tls(app: Any, tls: dict[str, Any]) -> ASGIApp:
    async def with_tls(scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("extensions", {})["tls"] = tls
        await app(scope, receive, send)

    return with_tls
