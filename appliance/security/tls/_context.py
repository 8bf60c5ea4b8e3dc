"""TLS settings for both ends: keyword arguments for uvicorn, an ``SSLContext`` for httpx.

Both check their files first (present, PEM, in date, key matching certificate),
so a mistake is reported as a :class:`~appliance.errors.ConfigError` with a
hint at start-up rather than as an OpenSSL message on the first connection.
"""

from __future__ import annotations

import ssl
from datetime import datetime
from pathlib import Path
from typing import TypedDict

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from appliance.errors import ConfigError
from appliance.security.tls._errors import CertificateError
from appliance.security.tls._store import (
    load_certificate,
    load_private_key,
    read_certificates,
    resolve_now,
)
from appliance.security.tls._x509 import check_is_ca, check_key_matches, check_validity


class UvicornTLSOptions(TypedDict):
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config`` that turn on TLS."""

    ssl_certfile: str
    ssl_keyfile: str
    ssl_ca_certs: str | None
    ssl_cert_reqs: int


def server_tls_options(
    cert: Path,
    key: Path,
    *,
    client_ca: Path | None = None,
    require_client_cert: bool = False,
    now: datetime | None = None,
) -> UvicornTLSOptions:
    """Check a server's certificate and key and say how uvicorn should serve TLS with them.

    With ``client_ca``, clients that present a certificate must present one
    issued by that CA; with ``require_client_cert`` too, clients without one
    are refused during the handshake (mutual TLS).
    """
    _check_pair(cert, key, now=now, issue_hint="re-issue it: 'appliance ca issue-server'")
    if client_ca is not None:
        _load_ca_certificate(client_ca, now=now)
        cert_reqs = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    elif require_client_cert:
        raise ConfigError(
            "requiring client certificates needs a CA to check them against",
            hint="pass --client-ca (usually the site CA, ca/ca.crt)",
        )
    else:
        cert_reqs = ssl.CERT_NONE
    return UvicornTLSOptions(
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        ssl_ca_certs=str(client_ca) if client_ca is not None else None,
        ssl_cert_reqs=int(cert_reqs),
    )


def client_ssl_context(
    ca_file: Path,
    *,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    now: datetime | None = None,
) -> ssl.SSLContext:
    """A client context that trusts the site CA and nothing else.

    TLS 1.2 or later, the server's certificate must be issued by the CA in
    ``ca_file`` and name the host dialled; the system trust store is not
    loaded, so a publicly trusted certificate for the wrong server is refused
    too. Pass ``client_cert`` and ``client_key`` for a hub that requires mutual
    TLS. Use it as ``httpx.Client(verify=context)``.
    """
    ca = _load_ca_certificate(ca_file, now=now)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.load_verify_locations(cadata=ca.public_bytes(serialization.Encoding.DER))
    if (client_cert is None) != (client_key is None):
        raise ConfigError(
            "a client certificate needs its private key, and the other way round",
            hint="pass both the certificate and the key, or neither",
        )
    if client_cert is not None and client_key is not None:
        _check_pair(
            client_cert, client_key, now=now, issue_hint="re-issue it: 'appliance ca issue-client'"
        )
        try:
            context.load_cert_chain(client_cert, client_key)
        except ssl.SSLError as exc:
            raise CertificateError(
                f"OpenSSL refused the client certificate {client_cert}: {exc.reason}"
            ) from exc
    return context


def _check_pair(cert: Path, key: Path, *, now: datetime | None, issue_hint: str) -> None:
    certificate = load_certificate(cert, now=now, hint=issue_hint)
    private_key = load_private_key(key, hint=f"pass the key issued with {cert.name}")
    check_key_matches(
        certificate, private_key, what=f"private key {key}", hint=f"pass the key issued with {cert}"
    )


def _load_ca_certificate(path: Path, *, now: datetime | None) -> x509.Certificate:
    hint = "pass the site CA certificate (ca/ca.crt in the hub's data directory)"
    certificates = read_certificates(path, missing_hint=hint)
    if len(certificates) > 1:
        raise CertificateError(f"{path} holds more than one certificate", hint=hint)
    check_is_ca(certificates[0], what=str(path), hint=f"{hint}, not a server's own certificate")
    check_validity(
        certificates[0],
        resolve_now(now),
        what=f"the site CA {path}",
        hint="renew the site CA: 'appliance ca init --force'",
    )
    return certificates[0]
