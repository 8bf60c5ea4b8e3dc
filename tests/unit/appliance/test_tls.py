"""The site CA and its certificates: fields clients rely on, file modes, and clear errors."""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import DNSName, IPAddress
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

import appliance.security.tls
from appliance.cli import ca as ca_cli
from appliance.errors import ConfigError
from appliance.security.tls import (
    CertAuthority,
    CertificateError,
    CertificateExpiredError,
    KeyMismatchError,
    client_ssl_context,
    init_ca,
    issue_client_cert,
    issue_server_cert,
    load_ca,
    load_certificate,
    server_tls_options,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
E = TypeVar("E", bound=x509.ExtensionType)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _ext(cert: x509.Certificate, kind: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(kind)


@pytest.fixture
def ca(tmp_path: Path) -> CertAuthority:
    return init_ca(tmp_path / "ca", now=NOW)


def test_public_api_is_exactly_this():
    assert sorted(appliance.security.tls.__all__) == [
        "CA_DAYS",
        "CertAuthority",
        "CertificateError",
        "CertificateExpiredError",
        "CertificateFiles",
        "KeyMismatchError",
        "LEAF_DAYS",
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
    assert issubclass(CertificateError, ConfigError)
    assert issubclass(CertificateExpiredError, CertificateError)
    assert issubclass(KeyMismatchError, CertificateError)


# -- the CA ------------------------------------------------------------------------------


def test_ca_is_a_self_signed_p256_root_that_may_sign_leaves_only(ca):
    cert = _cert(ca.cert_path)
    assert cert == ca.certificate
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Appliance site CA"
    cert.verify_directly_issued_by(cert)
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"

    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = _ext(cert, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature and not usage.value.key_encipherment
    assert _ext(cert, x509.SubjectKeyIdentifier).value == (
        x509.SubjectKeyIdentifier.from_public_key(key)
    )


def test_ca_is_valid_ten_years_from_a_few_minutes_ago(ca):
    cert = ca.certificate
    assert NOW - timedelta(minutes=10) < cert.not_valid_before_utc < NOW
    assert cert.not_valid_after_utc == NOW + timedelta(days=3650)


def test_ca_key_is_0600_in_a_0700_folder_and_certificate_is_0644(ca):
    assert _mode(ca.directory) == 0o700
    assert _mode(ca.key_path) == 0o600
    assert _mode(ca.cert_path) == 0o644
    assert ca.key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_init_again_reuses_the_ca_and_force_replaces_it(tmp_path, ca):
    pem = ca.cert_path.read_bytes()
    again = init_ca(ca.directory, now=NOW)
    assert again.fingerprint == ca.fingerprint
    assert ca.cert_path.read_bytes() == pem
    forced = init_ca(ca.directory, force=True, now=NOW)
    assert forced.fingerprint != ca.fingerprint
    assert load_ca(ca.directory, now=NOW).fingerprint == forced.fingerprint


def test_fingerprint_is_sha256_of_the_der_as_openssl_prints_it(ca):
    der = ca.certificate.public_bytes(serialization.Encoding.DER)
    assert ca.fingerprint == ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def test_missing_ca_says_to_run_init(tmp_path):
    with pytest.raises(CertificateError, match="no certificate authority") as err:
        load_ca(tmp_path / "nowhere")
    assert err.value.hint is not None and "appliance ca init" in err.value.hint


def test_ca_with_its_certificate_lost_is_not_silently_replaced(ca):
    ca.cert_path.unlink()
    with pytest.raises(CertificateError, match="no certificate at") as err:
        init_ca(ca.directory)
    assert err.value.hint is not None and "--force" in err.value.hint


def test_ca_file_that_is_not_a_certificate_is_refused(ca):
    ca.cert_path.write_text("hello\n")
    with pytest.raises(CertificateError, match="is not a PEM certificate"):
        load_ca(ca.directory)


def test_ca_key_from_another_ca_is_a_mismatch(tmp_path, ca):
    other = init_ca(tmp_path / "other", now=NOW)
    ca.key_path.write_bytes(other.key_path.read_bytes())
    with pytest.raises(KeyMismatchError):
        load_ca(ca.directory, now=NOW)


def test_ca_key_readable_by_others_is_refused(ca):
    ca.key_path.chmod(0o644)
    with pytest.raises(CertificateError, match="readable by others") as err:
        load_ca(ca.directory, now=NOW)
    assert err.value.hint == f"run 'chmod 600 {ca.key_path}'"


def test_expired_ca_is_refused_with_the_date(ca):
    later = NOW + timedelta(days=3651)
    with pytest.raises(CertificateExpiredError, match="expired on 2036-02-"):
        load_ca(ca.directory, now=later)


# -- leaf certificates -------------------------------------------------------------------


def test_server_certificate_names_the_hosts_and_only_serves(tmp_path, ca):
    files = issue_server_cert(
        ca,
        tmp_path / "tls",
        "hub",
        dns_names=["localhost", "Hub.Site.LAN"],
        ip_addresses=["127.0.0.1", "10.0.0.5", "::1"],
        now=NOW,
    )
    assert files.certificate == tmp_path / "tls" / "hub.crt"
    assert files.private_key == tmp_path / "tls" / "hub.key"
    cert = _cert(files.certificate)
    cert.verify_directly_issued_by(ca.certificate)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "hub"
    san = _ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "hub.site.lan"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("10.0.0.5"),
        ipaddress.ip_address("::1"),
    ]
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    usage = _ext(cert, x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    assert _ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == (
        _ext(ca.certificate, x509.SubjectKeyIdentifier).value.digest
    )
    assert _ext(cert, x509.SubjectKeyIdentifier).value == (
        x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    )


def test_server_certificate_defaults_to_loopback_and_397_days(tmp_path, ca):
    files = issue_server_cert(ca, tmp_path, "hub", now=NOW)
    cert = _cert(files.certificate)
    san = _ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert cert.not_valid_after_utc == NOW + timedelta(days=397)
    assert cert.not_valid_before_utc < NOW


def test_server_certificate_passes_a_strict_rfc5280_path_check(tmp_path, ca):
    files = issue_server_cert(ca, tmp_path, "hub", dns_names=["hub.site.lan"], now=NOW)
    store = Store([ca.certificate])
    policy = PolicyBuilder().store(store).time(NOW + timedelta(days=1))
    leaf = _cert(files.certificate)
    policy.build_server_verifier(DNSName("hub.site.lan")).verify(leaf, [])
    policy.build_server_verifier(IPAddress(ipaddress.ip_address("127.0.0.1"))).verify(leaf, [])
    with pytest.raises(x509.verification.VerificationError):
        policy.build_server_verifier(DNSName("elsewhere.lan")).verify(leaf, [])


def test_client_certificate_carries_the_agent_name_and_only_authenticates_clients(tmp_path, ca):
    files = issue_client_cert(ca, tmp_path / "out", "agent-1", now=NOW)
    cert = _cert(files.certificate)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "agent-1"
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    cert.verify_directly_issued_by(ca.certificate)
    assert cert.not_valid_after_utc == NOW + timedelta(days=397)


def test_leaf_keys_are_0600_and_new_folders_0700(tmp_path, ca):
    server = issue_server_cert(ca, tmp_path / "tls", "hub", now=NOW)
    client = issue_client_cert(ca, tmp_path / "out", "agent-1", now=NOW)
    for files in (server, client):
        assert _mode(files.private_key) == 0o600
        assert _mode(files.certificate) == 0o644
        assert _mode(files.private_key.parent) == 0o700


def test_a_leaf_never_outlives_its_ca(tmp_path):
    short_ca = init_ca(tmp_path / "ca", days=30, now=NOW)
    files = issue_server_cert(short_ca, tmp_path, "hub", now=NOW)
    assert _cert(files.certificate).not_valid_after_utc == short_ca.certificate.not_valid_after_utc


def test_reissuing_replaces_both_files_with_a_matching_pair(tmp_path, ca):
    first = issue_server_cert(ca, tmp_path, "hub", now=NOW)
    old_key = first.private_key.read_bytes()
    second = issue_server_cert(ca, tmp_path, "hub", now=NOW)
    assert second.private_key.read_bytes() != old_key
    server_tls_options(second.certificate, second.private_key, now=NOW)


@pytest.mark.parametrize(
    ("dns", "ips", "message"),
    [
        (["10.0.0.5"], [], "is an IP address, not a DNS name"),
        (["hub_site"], [], "is not a valid DNS name"),
        (["hübsite.lan"], [], "is not a valid DNS name"),
        ([], ["10.0.0.300"], "is not an IP address"),
        ([], [], "needs at least one DNS name or IP address"),
    ],
)
def test_bad_subject_alternative_names_are_explained(tmp_path, ca, dns, ips, message):
    with pytest.raises(ConfigError, match=message):
        issue_server_cert(ca, tmp_path, "hub", dns_names=dns, ip_addresses=ips, now=NOW)
    assert not (tmp_path / "hub.key").exists()


@pytest.mark.parametrize("name", ["../hub", "", "a/b", ".hidden"])
def test_names_that_are_not_plain_file_names_are_refused(tmp_path, ca, name):
    with pytest.raises(ConfigError, match="not a usable certificate name"):
        issue_client_cert(ca, tmp_path, name, now=NOW)


def test_zero_days_is_refused(tmp_path, ca):
    with pytest.raises(ConfigError, match="too short"):
        issue_client_cert(ca, tmp_path, "agent-1", days=0, now=NOW)


def test_expired_and_not_yet_valid_certificates_are_refused_when_loading(tmp_path, ca):
    files = issue_server_cert(ca, tmp_path, "hub", now=NOW)
    assert load_certificate(files.certificate, now=NOW + timedelta(days=1))
    with pytest.raises(CertificateExpiredError, match="expired on 2027-04-02"):
        load_certificate(files.certificate, now=NOW + timedelta(days=398))
    with pytest.raises(CertificateExpiredError, match="not valid until") as err:
        load_certificate(files.certificate, now=NOW - timedelta(days=1))
    assert err.value.hint == "check this machine's clock"


# -- server options and client contexts --------------------------------------------------


@pytest.fixture
def hub_files(tmp_path, ca):
    return issue_server_cert(ca, tmp_path / "tls", "hub")


def test_server_options_without_client_certificates(hub_files):
    assert server_tls_options(hub_files.certificate, hub_files.private_key) == {
        "ssl_certfile": str(hub_files.certificate),
        "ssl_keyfile": str(hub_files.private_key),
        "ssl_ca_certs": None,
        "ssl_cert_reqs": ssl.CERT_NONE,
    }


def test_server_options_for_optional_and_required_client_certificates(ca, hub_files):
    cert, key = hub_files
    optional = server_tls_options(cert, key, client_ca=ca.cert_path)
    assert optional["ssl_ca_certs"] == str(ca.cert_path)
    assert optional["ssl_cert_reqs"] == ssl.CERT_OPTIONAL
    required = server_tls_options(cert, key, client_ca=ca.cert_path, require_client_cert=True)
    assert required["ssl_cert_reqs"] == ssl.CERT_REQUIRED


def test_requiring_client_certificates_without_a_ca_is_explained(hub_files):
    with pytest.raises(ConfigError, match="needs a CA") as err:
        server_tls_options(*hub_files, require_client_cert=True)
    assert err.value.hint is not None and "--client-ca" in err.value.hint


def test_server_key_from_another_certificate_is_a_mismatch(tmp_path, ca, hub_files):
    other = issue_server_cert(ca, tmp_path / "other", "hub")
    with pytest.raises(KeyMismatchError, match="does not belong to its certificate"):
        server_tls_options(hub_files.certificate, other.private_key)


def test_server_certificate_given_as_the_ca_is_refused(hub_files):
    with pytest.raises(CertificateError, match="is not a CA certificate"):
        server_tls_options(*hub_files, client_ca=hub_files.certificate)
    with pytest.raises(CertificateError, match="is not a CA certificate") as err:
        client_ssl_context(hub_files.certificate)
    assert err.value.hint is not None and "ca/ca.crt" in err.value.hint


def test_missing_server_files_are_explained(tmp_path):
    with pytest.raises(CertificateError, match="no certificate at") as err:
        server_tls_options(tmp_path / "hub.crt", tmp_path / "hub.key")
    assert err.value.hint is not None and "issue-server" in err.value.hint


def test_expired_server_certificate_is_refused_at_start_up(tmp_path, ca):
    files = issue_server_cert(ca, tmp_path, "hub", days=30, now=NOW)
    with pytest.raises(CertificateExpiredError, match="expired on 2026-03-31") as err:
        server_tls_options(*files, now=NOW + timedelta(days=31))
    assert err.value.hint is not None and "issue-server" in err.value.hint


def test_client_context_pins_the_site_ca_only(ca):
    context = client_ssl_context(ca.cert_path)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_flags & ssl.VERIFY_X509_STRICT
    assert context.cert_store_stats()["x509_ca"] == 1
    (pinned,) = context.get_ca_certs(binary_form=True)
    assert pinned == ca.certificate.public_bytes(serialization.Encoding.DER)


def test_client_context_loads_a_client_certificate(tmp_path, ca):
    files = issue_client_cert(ca, tmp_path, "agent-1")
    client_ssl_context(ca.cert_path, client_cert=files.certificate, client_key=files.private_key)


def test_client_certificate_without_its_key_is_refused(tmp_path, ca):
    files = issue_client_cert(ca, tmp_path, "agent-1")
    with pytest.raises(ConfigError, match="needs its private key"):
        client_ssl_context(ca.cert_path, client_cert=files.certificate)


def test_client_key_from_another_certificate_is_a_mismatch(tmp_path, ca):
    one = issue_client_cert(ca, tmp_path, "agent-1")
    two = issue_client_cert(ca, tmp_path, "agent-2")
    with pytest.raises(KeyMismatchError):
        client_ssl_context(ca.cert_path, client_cert=one.certificate, client_key=two.private_key)


def test_ca_file_with_two_certificates_is_refused(tmp_path, ca):
    other = init_ca(tmp_path / "other")
    bundle = tmp_path / "bundle.crt"
    bundle.write_bytes(ca.cert_path.read_bytes() + other.cert_path.read_bytes())
    with pytest.raises(CertificateError, match="more than one certificate"):
        client_ssl_context(bundle)


def test_expired_ca_is_refused_by_clients(ca):
    with pytest.raises(CertificateExpiredError, match="the site CA"):
        client_ssl_context(ca.cert_path, now=NOW + timedelta(days=4000))


# -- command line ------------------------------------------------------------------------


def _run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument("--data-dir", type=Path)
    ca_cli.add_parsers(parser.add_subparsers(dest="command", required=True), data_dir)
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_creates_the_ca_issues_certificates_and_prints_the_fingerprint(tmp_path, capsys):
    data = tmp_path / "hub"
    assert _run_cli("ca", "init", "--data-dir", str(data)) == 0
    init_out = capsys.readouterr().out
    fingerprint = load_ca(data / "ca").fingerprint
    assert "created site CA" in init_out and fingerprint in init_out
    assert str(data / "ca" / "ca.crt") in init_out

    assert _run_cli("ca", "init", "--data-dir", str(data)) == 0
    assert "kept existing site CA" in capsys.readouterr().out
    assert load_ca(data / "ca").fingerprint == fingerprint

    argv = ["ca", "issue-server", "--data-dir", str(data), "--dns", "hub.lan", "--ip", "10.1.2.3"]
    assert _run_cli(*argv) == 0
    server_out = capsys.readouterr().out
    assert (
        str(data / "tls" / "hub.crt") in server_out and str(data / "tls" / "hub.key") in server_out
    )
    assert "localhost, hub.lan, 127.0.0.1, 10.1.2.3" in server_out and fingerprint in server_out
    server_tls_options(data / "tls" / "hub.crt", data / "tls" / "hub.key")

    out = tmp_path / "kit"
    argv = ["ca", "issue-client", "--data-dir", str(data), "--name", "agent-1", "--out", str(out)]
    assert _run_cli(*argv) == 0
    client_out = capsys.readouterr().out
    assert str(out / "agent-1.crt") in client_out and fingerprint in client_out
    assert _mode(out / "agent-1.key") == 0o600


def test_cli_issue_without_a_ca_says_to_run_init(tmp_path):
    with pytest.raises(CertificateError) as err:
        _run_cli("ca", "issue-server", "--data-dir", str(tmp_path))
    assert err.value.hint == "run 'appliance ca init' first"


def test_cli_no_loopback_leaves_out_localhost(tmp_path):
    _run_cli("ca", "init", "--data-dir", str(tmp_path))
    _run_cli("ca", "issue-server", "--data-dir", str(tmp_path), "--no-loopback", "--dns", "h.lan")
    san = _ext(_cert(tmp_path / "tls" / "hub.crt"), x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["h.lan"]
    assert san.get_values_for_type(x509.IPAddress) == []


def test_cli_prints_fingerprints_verbatim_never_as_emoji(tmp_path, capsys, monkeypatch):
    shown = "8A:AB:AA:CD:" * 7 + "8A:AB:AA:CD"  # rich would turn ":AB:" into an emoji
    monkeypatch.setattr(CertAuthority, "fingerprint", property(lambda _self: shown))
    _run_cli("ca", "init", "--data-dir", str(tmp_path))
    assert f"CA SHA-256 fingerprint: {shown}\n" in capsys.readouterr().out


def test_a_signing_request_gets_the_names_its_issuer_decides(ca, tmp_path):
    """An agent's TLS certificate at enrolment: its key stays on the box."""
    from cryptography import x509

    from appliance.security.tls import new_signing_request, sign_server_request

    request = new_signing_request(tmp_path / "tls", "agent")
    assert (tmp_path / "tls" / "agent.key").stat().st_mode & 0o777 == 0o600
    assert new_signing_request(tmp_path / "tls", "agent") != b""  # the same key, reused
    pem = sign_server_request(
        ca, request, dns_names=["edge-1", "localhost"], ip_addresses=["127.0.0.1"], now=NOW
    )
    certificate = x509.load_pem_x509_certificate(pem)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["edge-1", "localhost"]
    assert certificate.issuer == ca.certificate.subject
    with pytest.raises(CertificateError):
        sign_server_request(ca, b"not a request", dns_names=["x"], ip_addresses=[], now=NOW)
