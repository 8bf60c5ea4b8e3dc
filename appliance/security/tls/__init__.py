"""TLS for the hub, its agents and the console, rooted in a local site CA.

The hub's operator creates one CA per site (``appliance ca init``), issues the
hub a server certificate (``appliance ca issue-server``) and, for mutual TLS,
each agent a client certificate (``appliance ca issue-client``). Clients pin
the site CA only, never the system trust store. Files live under the data
directory (``ca/`` and ``tls/``, see :mod:`appliance.security.tls._store`).

Errors, all operator mistakes and so all ``ConfigError``::

    ConfigError
    └── CertificateError            a certificate or key file is missing or unusable
        ├── CertificateExpiredError expired, or not valid yet (clock skew)
        └── KeyMismatchError        the key does not belong to the certificate
"""

from appliance.security.tls._context import (
    UvicornTLSOptions,
    client_ssl_context,
    server_tls_options,
)
from appliance.security.tls._errors import (
    CertificateError,
    CertificateExpiredError,
    KeyMismatchError,
)
from appliance.security.tls._store import (
    CA_DAYS,
    LEAF_DAYS,
    CertAuthority,
    CertificateFiles,
    ca_dir,
    init_ca,
    issue_client_cert,
    issue_server_cert,
    load_ca,
    load_certificate,
    load_private_key,
    new_signing_request,
    sign_client_request,
    sign_server_request,
    tls_dir,
)
from appliance.security.tls._x509 import certificate_sha256, fingerprint

__all__ = [
    "CA_DAYS",
    "LEAF_DAYS",
    "CertAuthority",
    "CertificateError",
    "CertificateExpiredError",
    "CertificateFiles",
    "KeyMismatchError",
    "UvicornTLSOptions",
    "ca_dir",
    "certificate_sha256",
    "client_ssl_context",
    "fingerprint",
    "init_ca",
    "issue_client_cert",
    "issue_server_cert",
    "load_ca",
    "load_certificate",
    "load_private_key",
    "new_signing_request",
    "server_tls_options",
    "sign_client_request",
    "sign_server_request",
    "tls_dir",
]
