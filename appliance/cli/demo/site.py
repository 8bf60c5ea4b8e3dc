"""Setting up a site the way an operator would: a CA, a hub certificate, people.

Used by the demo, the integration tests and the benchmark, so all three run the
same secured setup: users created with the bootstrap path of
``appliance users create --data-dir``, HTTPS from the site CA, agents enrolled
with one-time tokens.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from appliance import settings as config
from appliance.cli.connect import verify_for
from appliance.client.hub import HubClient
from appliance.security.credentials import UserCredentials
from appliance.security.tls import init_ca, issue_server_cert
from appliance.settings import HubSettings

ROLES = {
    "admin": ["admin"],
    "alice": ["ml-engineer"],
    "omar": ["approver"],
    "fatima": ["approver"],
    "sara": ["auditor"],
    "gpu01": ["worker"],
}
"""The demo site's accounts: an admin, an ML engineer, two approvers, an auditor and the
account of one GPU server's training worker."""


@dataclass(frozen=True)
class Site:
    root: Path
    hub_dir: Path
    tls: tuple[Path, Path, Path] | None
    """(hub certificate, hub key, site CA certificate) when the hub speaks HTTPS."""
    passwords: dict[str, str] = field(repr=False)

    @property
    def ca_file(self) -> Path | None:
        return self.tls[2] if self.tls else None

    @property
    def trusted_root(self) -> Path:
        """The hub's first TUF root, as an installer copies it to agents (exists once it ran)."""
        return self.hub_dir / "tuf" / "metadata" / "1.root.json"

    def client(self, hub_url: str, username: str) -> HubClient:
        """A client signed in as ``username``."""
        credentials = self.sign_in(hub_url, username)
        return HubClient(hub_url, credentials=credentials, verify=verify_for(self.ca_file))

    def sign_in(self, hub_url: str, username: str) -> UserCredentials:
        with HubClient(hub_url, verify=verify_for(self.ca_file)) as anonymous:
            tokens = anonymous.sign_in(username, self.passwords[username])
        return UserCredentials(
            tokens["access_token"],
            tokens["refresh_token"],
            hub_url,
            hub_ca=str(self.ca_file) if self.ca_file else None,
        )

    def session_file(self, hub_url: str, username: str, path: Path) -> Path:
        """Sign ``username`` in and keep the session in ``path``, as 'appliance login' does."""
        self.sign_in(hub_url, username).save(path)
        return path


def bootstrap_site(root: Path, *, tls: bool = True) -> Site:
    """Create the CA and hub certificate (if ``tls``) and the people, before the hub starts."""
    from hub.services import build_services  # lazy: the hub extra, absent on agent boxes

    hub_dir = root / "hub"
    certs: tuple[Path, Path, Path] | None = None
    if tls:
        ca = init_ca(root / "ca")
        files = issue_server_cert(
            ca, hub_dir / "tls", "hub", dns_names=("localhost",), ip_addresses=("127.0.0.1",)
        )
        certs = (files.certificate, files.private_key, ca.cert_path)
    services = build_services(config.load(HubSettings, {"data_dir": hub_dir}))
    passwords = {}
    try:
        for username, roles in ROLES.items():
            passwords[username] = secrets.token_urlsafe(18)
            services.identity.create_user(
                username, passwords[username], roles, actor="system:bootstrap"
            )
    finally:
        services.engine.dispose()
    return Site(root=root, hub_dir=hub_dir, tls=certs, passwords=passwords)
