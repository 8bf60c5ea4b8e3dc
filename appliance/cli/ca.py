"""``appliance ca …``: the site certificate authority and the certificates it issues."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryptography import x509

from appliance import settings as config
from appliance.cli.output import console
from appliance.security.tls import (
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
    tls_dir,
)
from appliance.settings import HubSettings

LOOPBACK_DNS = ("localhost",)
LOOPBACK_IPS = ("127.0.0.1",)


def _data_dir(args: argparse.Namespace) -> Path:
    return config.load(HubSettings, {"data_dir": args.data_dir}).data_dir


def _say(text: str) -> None:
    console.print(text, markup=False, highlight=False, emoji=False)  # ":AB:" is not 🆎


def _print_fingerprint(ca: CertAuthority) -> None:
    _say(f"CA SHA-256 fingerprint: {ca.fingerprint}")


def _print_issued(kind: str, name: str, files: CertificateFiles) -> None:
    """Describe the certificate as written, so what is printed is what clients will see."""
    certificate = load_certificate(files.certificate)
    until = certificate.not_valid_after_utc
    _say(f"issued {kind} certificate for {name}, valid until {until:%Y-%m-%d}")
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        pass
    else:
        dns = san.get_values_for_type(x509.DNSName)
        ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
        _say(f"  for clients dialling: {', '.join([*dns, *ips])}")
    _say(f"  certificate: {files.certificate}")
    _say(f"  private key: {files.private_key} (mode 0600)")


def ca_init(args: argparse.Namespace) -> int:
    folder = ca_dir(_data_dir(args))
    existed = (folder / "ca.key").exists()
    ca = init_ca(folder, common_name=args.common_name, days=args.days, force=args.force)
    verb = "kept existing" if existed and not args.force else "created"
    until = ca.certificate.not_valid_after_utc
    _say(f"{verb} site CA in {folder} (private key mode 0600, valid until {until:%Y-%m-%d})")
    _say(f"CA certificate to pin on agents and consoles: {ca.cert_path}")
    _print_fingerprint(ca)
    return 0


def ca_issue_server(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    ca = load_ca(ca_dir(data_dir))
    loopback = not args.no_loopback
    dns = [*(LOOPBACK_DNS if loopback else ()), *(args.dns or [])]
    ips = [*(LOOPBACK_IPS if loopback else ()), *(args.ip or [])]
    files = issue_server_cert(
        ca, tls_dir(data_dir), args.name, dns_names=dns, ip_addresses=ips, days=args.days
    )
    _print_issued("server", args.name, files)
    _print_fingerprint(ca)
    return 0


def ca_issue_client(args: argparse.Namespace) -> int:
    ca = load_ca(ca_dir(_data_dir(args)))
    files = issue_client_cert(ca, args.out, args.name, days=args.days)
    _print_issued("client", args.name, files)
    _say(f"give the agent both files and the CA certificate {ca.cert_path}")
    _print_fingerprint(ca)
    return 0


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], data_dir: argparse.ArgumentParser
) -> None:
    ca = sub.add_parser("ca", help="manage the site certificate authority for TLS")
    csub = ca.add_subparsers(dest="ca_command", required=True)

    init = csub.add_parser(
        "init", parents=[data_dir], help="create the site CA (ECDSA P-256) under DATA_DIR/ca"
    )
    init.add_argument("--common-name", default="Appliance site CA", help="the CA's name")
    init.add_argument("--days", type=int, default=CA_DAYS, help=f"validity (default {CA_DAYS})")
    init.add_argument(
        "--force", action="store_true", help="replace an existing CA (re-issue every certificate)"
    )
    init.set_defaults(func=ca_init)

    server = csub.add_parser(
        "issue-server",
        parents=[data_dir],
        help="issue a server certificate into DATA_DIR/tls/NAME.crt and NAME.key",
    )
    server.add_argument("--name", default="hub", help="file name and common name (default hub)")
    server.add_argument(
        "--dns", action="append", metavar="NAME", help="DNS name clients dial (repeatable)"
    )
    server.add_argument(
        "--ip", action="append", metavar="ADDRESS", help="IP address clients dial (repeatable)"
    )
    server.add_argument(
        "--no-loopback",
        action="store_true",
        help="leave out localhost and 127.0.0.1, which are included by default",
    )
    server.add_argument(
        "--days", type=int, default=LEAF_DAYS, help=f"validity (default {LEAF_DAYS})"
    )
    server.set_defaults(func=ca_issue_server)

    client = csub.add_parser(
        "issue-client",
        parents=[data_dir],
        help="issue a client certificate for mutual TLS into OUT/NAME.crt and NAME.key",
    )
    client.add_argument("--name", required=True, help="the agent's name (the common name)")
    client.add_argument(
        "--out", required=True, type=lambda v: Path(v).expanduser(), help="folder to write to"
    )
    client.add_argument(
        "--days", type=int, default=LEAF_DAYS, help=f"validity (default {LEAF_DAYS})"
    )
    client.set_defaults(func=ca_issue_client)
