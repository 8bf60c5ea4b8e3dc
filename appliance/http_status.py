"""The one mapping from our error families to HTTP status codes."""

from __future__ import annotations

from appliance.errors import (
    ApplianceError,
    AuthenticationError,
    BodyTooLargeError,
    BundleError,
    ConfigError,
    ConflictError,
    HubUnavailableError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    StorageError,
    TimedOutError,
    UnprocessableInputError,
)

_STATUS: tuple[tuple[type[ApplianceError], int], ...] = (
    (UnprocessableInputError, 422),
    (BodyTooLargeError, 413),
    (InvalidInputError, 400),
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (RateLimitedError, 429),
    (TimedOutError, 504),
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
