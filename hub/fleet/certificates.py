"""Agents' TLS server certificates, issued by the site CA at enrolment.

An agent sends a certificate signing request with its enrolment (its key stays on the
box); when the hub holds the site CA (``APPLIANCE_SITE_CA``, by default ``ca/`` in the
hub's data directory, as ``appliance ca init`` makes it) it answers with a certificate
for the agent's name, ``localhost`` and the host of the URL it gave. Clients that pin the
site CA then reach agents over HTTPS. Without the CA the answer has no certificate, and
the agent serves plain HTTP only if it was told it may (``APPLIANCE_PLAIN_HTTP``).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from appliance.errors import InvalidInputError
from appliance.security.tls import (
    CertAuthority,
    CertificateError,
    ca_dir,
    load_ca,
    sign_server_request,
)


class AgentCertificates:
    """Not a dataclass: Litestar converts dataclass dependencies field by field."""

    def __init__(self, ca: CertAuthority | None) -> None:
        self.ca = ca

    @classmethod
    def for_hub(cls, site_ca: Path | None, data_dir: Path) -> AgentCertificates:
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
