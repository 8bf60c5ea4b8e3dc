"""Errors for TLS files: all are operator mistakes, so all are ``ConfigError``s."""

from __future__ import annotations

from appliance.errors import ConfigError


class CertificateError(ConfigError):
    """A certificate or private key file is missing, malformed or of the wrong kind."""


class CertificateExpiredError(CertificateError):
    """A certificate is outside its validity window: expired, or not valid yet (clock skew)."""


class KeyMismatchError(CertificateError):
    """A private key does not belong to the certificate it is paired with."""
