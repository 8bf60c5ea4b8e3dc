"""The site CA and the certificates it issues, as PEM files on disk.

Layout under a data directory::

    ca/ca.crt      the site CA certificate (0644): pin it on agents and consoles
    ca/ca.key      its ECDSA P-256 key (PKCS#8, 0600, folder 0700): never leaves the hub
    tls/NAME.crt   a server certificate issued by the CA (0644)
    tls/NAME.key   its key (0600)

Every file is written atomically; private keys readable by anyone but their
owner are refused when loaded, as :mod:`appliance.security.keys` does for signing keys.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

from appliance.clock import utcnow
from appliance.errors import ConfigError
from appliance.fsutil import atomic_write_bytes
from appliance.security.tls._errors import CertificateError
from appliance.security.tls._x509 import (
    IPAddress,
    Usage,
    build_ca_certificate,
    build_leaf_certificate,
    check_is_ca,
    check_key_matches,
    check_validity,
    fingerprint,
    new_private_key,
    subject_alt_names,
)

CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
DEFAULT_CA_NAME = "Appliance site CA"
CA_DAYS = 3650
"""Ten years: replacing a site CA means touching every agent, so it should be rare."""
LEAF_DAYS = 397
"""The CA/Browser Forum ceiling, so browsers pointed at the console accept it too."""

_INIT_HINT = "run 'appliance ca init' first"
_NEW_CA_HINT = (
    "restore it from a backup, or run 'appliance ca init --force' for a new CA "
    "and re-issue every certificate"
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def ca_dir(data_dir: Path) -> Path:
    return data_dir / "ca"


def tls_dir(data_dir: Path) -> Path:
    return data_dir / "tls"


@dataclass(frozen=True)
class CertAuthority:
    """The site CA, loaded and checked: its certificate matches its key and is in date."""

    directory: Path
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    @property
    def cert_path(self) -> Path:
        return self.directory / CA_CERT_FILE

    @property
    def key_path(self) -> Path:
        return self.directory / CA_KEY_FILE

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the CA certificate, ``AB:CD:…``, for operators to compare by eye."""
        return fingerprint(self.certificate)


class CertificateFiles(NamedTuple):
    """Where an issued certificate and its private key were written."""

    certificate: Path
    private_key: Path


def init_ca(
    directory: Path,
    *,
    common_name: str = DEFAULT_CA_NAME,
    days: int = CA_DAYS,
    force: bool = False,
    now: datetime | None = None,
) -> CertAuthority:
    """Create the site CA in ``directory``; reuse (and check) an existing one unless ``force``."""
    cert_path, key_path = directory / CA_CERT_FILE, directory / CA_KEY_FILE
    if (cert_path.exists() or key_path.exists()) and not force:
        return load_ca(directory, now=now)
    if not common_name.strip():
        raise ConfigError("the CA needs a non-empty common name")
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    key = new_private_key()
    certificate = build_ca_certificate(key, common_name, now=resolve_now(now), days=days)
    _write_key(key_path, key)
    atomic_write_bytes(cert_path, _cert_pem(certificate), mode=0o644)
    return CertAuthority(directory, certificate, key)


def load_ca(directory: Path, *, now: datetime | None = None) -> CertAuthority:
    """Load the site CA from ``directory``, refusing a broken, mismatched or expired one."""
    cert_path, key_path = directory / CA_CERT_FILE, directory / CA_KEY_FILE
    if not cert_path.exists() and not key_path.exists():
        raise CertificateError(f"no certificate authority in {directory}", hint=_INIT_HINT)
    certificate = read_certificates(cert_path, missing_hint=_NEW_CA_HINT)[0]
    check_is_ca(certificate, what=str(cert_path), hint=_NEW_CA_HINT)
    key = _read_private_key(key_path, missing_hint=_NEW_CA_HINT)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{key_path} is not an ECDSA key", hint=_NEW_CA_HINT)
    check_key_matches(certificate, key, what=f"CA key {key_path}", hint=_NEW_CA_HINT)
    check_validity(
        certificate,
        resolve_now(now),
        what=f"the site CA {cert_path}",
        hint="run 'appliance ca init --force' and re-issue every certificate",
    )
    return CertAuthority(directory, certificate, key)


def issue_server_cert(
    ca: CertAuthority,
    out_dir: Path,
    name: str,
    *,
    dns_names: Sequence[str] = ("localhost",),
    ip_addresses: Sequence[str | IPAddress] = ("127.0.0.1",),
    days: int = LEAF_DAYS,
    now: datetime | None = None,
) -> CertificateFiles:
    """Write ``out_dir/NAME.crt`` and ``NAME.key`` for a TLS server reachable at these names.

    Clients check the host they dial against ``dns_names`` and ``ip_addresses``
    (the subject alternative names); the common name is only a label.
    """
    dns, ips = subject_alt_names(dns_names, ip_addresses)
    return _issue(ca, out_dir, name, "server", dns, ips, days=days, now=now)


def issue_client_cert(
    ca: CertAuthority,
    out_dir: Path,
    name: str,
    *,
    days: int = LEAF_DAYS,
    now: datetime | None = None,
) -> CertificateFiles:
    """Write ``out_dir/NAME.crt`` and ``NAME.key`` for mutual TLS; the common name is ``name``."""
    return _issue(ca, out_dir, name, "client", [], [], days=days, now=now)


def new_signing_request(out_dir: Path, name: str) -> bytes:
    """Write ``out_dir/NAME.key`` (0600, reused if there) and return a certificate signing
    request (PEM) for it: the key never leaves the box that will use it (an agent's server,
    an application's client certificate)."""
    if not _NAME.fullmatch(name):
        raise ConfigError(f"{name!r} is not a usable certificate name")
    key_path = out_dir / f"{name}.key"
    if key_path.exists():
        loaded = _read_private_key(key_path, missing_hint=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise CertificateError(f"{key_path} is not an ECDSA key", hint="delete it")
        key = loaded
    else:
        if not out_dir.exists():
            out_dir.mkdir(parents=True, mode=0o700)
        key = new_private_key()
        _write_key(key_path, key)
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM)


def sign_server_request(
    ca: CertAuthority,
    request_pem: bytes,
    *,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str | IPAddress],
    days: int = LEAF_DAYS,
    now: datetime | None = None,
) -> bytes:
    """A server certificate (PEM) for the key in a signing request, with the names the
    *issuer* decides (the request's own names are ignored): the request only proves that
    its sender holds the key."""
    dns, ips = subject_alt_names(dns_names, ip_addresses)
    certificate = build_leaf_certificate(
        ca.certificate,
        ca.private_key,
        _requested_key(request_pem),
        common_name=(dns or [str(ip) for ip in ips])[0],
        usage="server",
        dns_names=dns,
        ip_addresses=ips,
        now=resolve_now(now),
        days=days,
    )
    return _cert_pem(certificate)


def sign_client_request(
    ca: CertAuthority,
    request_pem: bytes,
    *,
    common_name: str,
    days: int = LEAF_DAYS,
    now: datetime | None = None,
) -> bytes:
    """A client certificate (PEM, for mutual TLS) for the key in a signing request, named
    ``common_name`` by the issuer whatever the request says."""
    certificate = build_leaf_certificate(
        ca.certificate,
        ca.private_key,
        _requested_key(request_pem),
        common_name=common_name,
        usage="client",
        now=resolve_now(now),
        days=days,
    )
    return _cert_pem(certificate)


def _requested_key(request_pem: bytes) -> ec.EllipticCurvePublicKey:
    """The key a signing request proves its sender holds (ECDSA only)."""
    try:
        request = x509.load_pem_x509_csr(request_pem)
    except ValueError as exc:
        raise CertificateError("the certificate signing request is not a PEM CSR") from exc
    public_key = request.public_key()
    if not request.is_signature_valid or not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise CertificateError("the certificate signing request is unsigned or not ECDSA")
    return public_key


def load_certificate(
    path: Path, *, now: datetime | None = None, hint: str | None = None
) -> x509.Certificate:
    """The first certificate in a PEM file, refused if it is not in date at ``now``."""
    certificate = read_certificates(path, missing_hint=hint)[0]
    check_validity(
        certificate, resolve_now(now), what=f"certificate {path}", hint=hint or "issue a new one"
    )
    return certificate


def load_private_key(path: Path, *, hint: str | None = None) -> PrivateKeyTypes:
    """An unencrypted PEM private key that only its owner can read."""
    return _read_private_key(path, missing_hint=hint)


# -- private helpers ---------------------------------------------------------------------


def _issue(
    ca: CertAuthority,
    out_dir: Path,
    name: str,
    usage: Usage,
    dns: list[str],
    ips: list[IPAddress],
    *,
    days: int,
    now: datetime | None,
) -> CertificateFiles:
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"{name!r} is not a usable certificate name",
            hint="use letters, digits, '.', '_' and '-' (it names the files), e.g. hub or agent-1",
        )
    key = new_private_key()
    certificate = build_leaf_certificate(
        ca.certificate,
        ca.private_key,
        key.public_key(),
        common_name=name,
        usage=usage,
        dns_names=dns,
        ip_addresses=ips,
        now=resolve_now(now),
        days=days,
    )
    if not out_dir.exists():
        out_dir.mkdir(parents=True, mode=0o700)
    files = CertificateFiles(out_dir / f"{name}.crt", out_dir / f"{name}.key")
    _write_key(files.private_key, key)
    atomic_write_bytes(files.certificate, _cert_pem(certificate), mode=0o644)
    return files


def resolve_now(now: datetime | None) -> datetime:
    if now is None:
        return utcnow()
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def _cert_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    atomic_write_bytes(path, pem, mode=0o600)


def _read(path: Path, what: str, missing_hint: str | None) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise CertificateError(f"no {what} at {path}", hint=missing_hint) from exc
    except OSError as exc:
        raise CertificateError(f"cannot read {what} {path}: {exc.strerror}") from exc


def read_certificates(path: Path, *, missing_hint: str | None) -> list[x509.Certificate]:
    data = _read(path, "certificate", missing_hint)
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise CertificateError(
            f"{path} is not a PEM certificate",
            hint="expected a file starting with -----BEGIN CERTIFICATE-----",
        ) from exc


def _read_private_key(path: Path, *, missing_hint: str | None) -> PrivateKeyTypes:
    data = _read(path, "private key", missing_hint)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise CertificateError(
            f"private key {path} is readable by others (mode {mode:o})",
            hint=f"run 'chmod 600 {path}'",
        )
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:  # encrypted, and we gave no password
        raise CertificateError(
            f"private key {path} is encrypted",
            hint="services start unattended: store the key unencrypted with mode 0600",
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateError(f"{path} is not a PEM private key") from exc
