"""Building and checking X.509 certificates, with no disk or network access.

Every function here takes the time it should judge by, so tests can move the
clock instead of waiting for it, and file handling lives in ``_store``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import ssl
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.errors import ConfigError
from appliance.security.tls._errors import (
    CertificateError,
    CertificateExpiredError,
    KeyMismatchError,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Usage = Literal["server", "client"]

BACKDATE = timedelta(minutes=5)
"""Certificates start this long before they are issued, so a peer whose clock
is a little behind does not reject a certificate made a moment ago."""

_EKU = {"server": ExtendedKeyUsageOID.SERVER_AUTH, "client": ExtendedKeyUsageOID.CLIENT_AUTH}
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DNS_NAME = re.compile(rf"(?:\*\.)?(?:{_LABEL}\.)*{_LABEL}")


def new_private_key() -> ec.EllipticCurvePrivateKey:
    """ECDSA P-256: small, fast, and accepted by every TLS 1.2+ stack we talk to."""
    return ec.generate_private_key(ec.SECP256R1())


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the DER encoding as ``AB:CD:…``, the form ``openssl x509 -fingerprint`` shows."""
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def certificate_sha256(pem: str) -> str:
    """SHA-256 (hex) of a PEM certificate's DER encoding: how an inference grant names the
    client certificate it is for."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca


def common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else certificate.subject.rfc4514_string()


def _days(days: int) -> timedelta:
    if days < 1:
        raise ConfigError(f"a validity of {days} days is too short", hint="pass --days 1 or more")
    return timedelta(days=days)


def build_ca_certificate(
    key: ec.EllipticCurvePrivateKey, common_name: str, *, now: datetime, days: int
) -> x509.Certificate:
    """A self-signed root that may sign leaf certificates only (path length 0)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + _days(days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def build_leaf_certificate(
    ca_certificate: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    public_key: ec.EllipticCurvePublicKey,
    *,
    common_name: str,
    usage: Usage,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[IPAddress] = (),
    now: datetime,
    days: int,
) -> x509.Certificate:
    """A certificate for a TLS server or client, never outliving the CA that signs it."""
    check_validity(
        ca_certificate,
        now,
        what="the CA certificate",
        hint="renew the CA: 'appliance ca init --force'",
    )
    ca_ski = ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    not_after = min(now + _days(days), ca_certificate.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([_EKU[usage]]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    )
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    names += [x509.IPAddress(ip) for ip in ip_addresses]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def subject_alt_names(
    dns_names: Iterable[str], ip_addresses: Iterable[str | IPAddress]
) -> tuple[list[str], list[IPAddress]]:
    """Check and normalise SAN entries: lower-case DNS names, parsed IPs, no duplicates."""
    dns: list[str] = []
    for raw in dns_names:
        value = raw.strip().lower().rstrip(".")
        if _is_ip(value):
            raise ConfigError(
                f"{raw!r} is an IP address, not a DNS name", hint=f"pass it as --ip {value}"
            )
        if not _DNS_NAME.fullmatch(value) or len(value) > 253:
            raise ConfigError(
                f"{raw!r} is not a valid DNS name",
                hint="use ASCII host names such as hub.site.lan (punycode for others)",
            )
        if value not in dns:
            dns.append(value)
    ips: list[IPAddress] = []
    for raw_ip in ip_addresses:
        try:
            ip = ipaddress.ip_address(raw_ip.strip() if isinstance(raw_ip, str) else raw_ip)
        except ValueError as exc:
            raise ConfigError(f"{raw_ip!r} is not an IP address") from exc
        if ip not in ips:
            ips.append(ip)
    if not dns and not ips:
        raise ConfigError(
            "a server certificate needs at least one DNS name or IP address",
            hint="pass --dns NAME or --ip ADDRESS",
        )
    return dns, ips


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def check_validity(certificate: x509.Certificate, now: datetime, *, what: str, hint: str) -> None:
    """Refuse a certificate outside its validity window, saying which side and when."""
    if now < certificate.not_valid_before_utc:
        raise CertificateExpiredError(
            f"{what} is not valid until {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
            hint="check this machine's clock",
        )
    if now > certificate.not_valid_after_utc:
        raise CertificateExpiredError(
            f"{what} expired on {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC", hint=hint
        )


def check_key_matches(
    certificate: x509.Certificate, key: PrivateKeyTypes, *, what: str, hint: str
) -> None:
    if _spki(certificate.public_key()) != _spki(key.public_key()):
        raise KeyMismatchError(f"{what} does not belong to its certificate", hint=hint)


def check_is_ca(certificate: x509.Certificate, *, what: str, hint: str) -> None:
    if not is_ca(certificate):
        raise CertificateError(f"{what} is not a CA certificate", hint=hint)


def _spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
