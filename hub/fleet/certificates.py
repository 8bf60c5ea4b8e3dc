"""Certificates the hub issues from the site CA: agents' TLS server certificates at
enrolment, and client certificates for applications that call agents (mutual TLS).

An agent sends a certificate signing request with its enrolment (its key stays on the
box); when the hub holds the site CA (``APPLIANCE_SITE_CA``, by default ``ca/`` in the
hub's data directory, as ``appliance ca init`` makes it) it answers with a certificate
for the agent's name, ``localhost`` and the host of the URL it gave. Clients that pin the
site CA then reach agents over HTTPS. Without the CA the answer has no certificate, and
the agent serves plain HTTP only if it was told it may (``APPLIANCE_PLAIN_HTTP``).

An application's client certificate is issued the same way, from its own signing request
(:meth:`SiteCertificates.issue_client`), as an inference credential
(:mod:`hub.access.service`).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from appliance.errors import ConflictError, InvalidInputError
from appliance.security.tls import (
    CertAuthority,
    CertificateError,
    ca_dir,
    load_ca,
    sign_client_request,
    sign_server_request,
)


class SiteCertificates:
    """Not a dataclass: Litestar converts dataclass dependencies field by field."""

    def __init__(self, ca: CertAuthority | None) -> None:
        self.ca = ca

    @classmethod
    def for_hub(cls, site_ca: Path | None, data_dir: Path) -> SiteCertificates:
        """The CA in ``site_ca`` (it must be there), else the one ``appliance ca init`` left
        in the hub's data directory, if any."""
        if site_ca is None and (ca_dir(data_dir) / "ca.key").exists():
            site_ca = ca_dir(data_dir)
        return cls(load_ca(site_ca) if site_ca is not None else None)

    def issue(self, request_pem: str | None, name: str, url: str | None) -> str | None:
        """A certificate (PEM) for an enrolling agent; ``None`` without a CA or a request."""
        if self.ca is None or not request_pem:
            return None
        host = (urlsplit(url).hostname or "") if url else ""
        dns, ips = [name.lower(), "localhost"], ["127.0.0.1"]
        try:
            ips.append(str(ipaddress.ip_address(host)))
        except ValueError:
            if host:
                dns.append(host.lower())
        try:
            return sign_server_request(
                self.ca, request_pem.encode(), dns_names=dns, ip_addresses=ips
            ).decode()
        except CertificateError as exc:
            raise InvalidInputError(f"tls_csr: {exc.message}") from exc

    def issue_client(self, request_pem: str, name: str, days: int) -> str:
        """A client certificate (PEM) named ``name``, for the key in ``request_pem``."""
        if self.ca is None:
            raise ConflictError(
                "this hub holds no site CA to issue client certificates from",
                hint="create one with 'appliance ca init' (or set APPLIANCE_SITE_CA), or "
                "issue a bearer key instead",
            )
        try:
            return sign_client_request(
                self.ca, request_pem.encode(), common_name=name, days=days
            ).decode()
        except CertificateError as exc:
            raise InvalidInputError(f"csr: {exc.message}") from exc
