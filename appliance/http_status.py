"""The one mapping from our error families to HTTP status codes."""

from __future__ import annotations

from appliance.errors import (
    ApplianceError,
    BundleError,
    ConfigError,
    ConflictError,
    HubUnavailableError,
    InvalidInputError,
    NotFoundError,
    StorageError,
    UnprocessableInputError,
)

_STATUS: tuple[tuple[type[ApplianceError], int], ...] = (
    (UnprocessableInputError, 422),
    (InvalidInputError, 400),
    (NotFoundError, 404),
    (ConflictError, 409),
    (BundleError, 422),
    (HubUnavailableError, 503),
    (StorageError, 507),
    (ConfigError, 500),
)


def status_for(exc: ApplianceError) -> int:
    for family, status in _STATUS:
        if isinstance(exc, family):
            return status
    return 500
