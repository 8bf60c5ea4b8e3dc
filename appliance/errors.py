"""One hierarchy for every error the appliance raises on purpose.

Callers catch a family, not a message: "the bundle is bad" is told apart from
"the hub is unreachable", and the HTTP layers translate each family once.

::

    ApplianceError
    ├── ConfigError                 settings, flags or key files are missing or wrong
    ├── BundleError                 a model bundle is bad or hostile (never install it)
    │   ├── BundleFormatError       missing file, malformed manifest, unsafe path, too big
    │   ├── SignatureError          signature missing, wrong, or by an untrusted key
    │   ├── IntegrityError          a file's SHA-256 or length differs from the manifest
    │   │   └── DecryptionError     encrypted file will not open: wrong key, not ours, altered
    │   ├── TestVectorError         the runtime's outputs disagree with the test vectors
    │   └── UpdateRefusedError      TUF metadata failed verification (signatures, versions)
    │       ├── StaleUpdateError    metadata expired: a freeze attack or an old offline bundle
    │       └── RollbackRefusedError  metadata older than what this agent already trusts
    ├── ModelLoadError              a runtime could not load a verified model
    ├── StorageError                a disk write failed (full disk, permissions) (507)
    ├── InvalidInputError           an inference or API request is malformed (400)
    │   ├── UnprocessableInputError the body parsed but is not a valid request (422)
    │   └── BodyTooLargeError       a request body over the service's limit (413)
    ├── AuthenticationError         credentials missing, malformed, expired or revoked (401)
    ├── PermissionDeniedError       the caller may not do this (403)
    │   ├── ResidencyRefusedError   a residency rule forbids this flow (403, names the rule)
    │   └── ApprovalRequiredError   a version lacks the approvals live traffic needs (403)
    ├── RateLimitedError            too many attempts; wait and retry (429)
    │   └── BusyError               a model's queue is full; retry after a moment (429)
    ├── TimedOutError               the work took longer than its limit (504)
    ├── NotFoundError               no such model, version or agent (404)
    ├── ConflictError               the request contradicts current state (409)
    │   └── IllegalStageTransitionError
    └── HubError                    talking to the hub failed
        ├── HubUnavailableError     connection refused, timeout, 5xx: try again later
        └── HubRejectedError        the hub answered with a 4xx: fix the request
"""

from __future__ import annotations


class ApplianceError(Exception):
    """Root of every error raised on purpose by the appliance."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(ApplianceError):
    """Settings, flags or key files are missing or malformed."""


class BundleError(ApplianceError):
    """A model bundle is bad or hostile; it must never be installed."""


class BundleFormatError(BundleError):
    """A file is missing, the manifest is malformed, or a path is unsafe."""


class SignatureError(BundleError):
    """The manifest signature is missing, invalid, or made by an untrusted key."""


class IntegrityError(BundleError):
    """A file's SHA-256 or length does not match what the manifest says."""


class DecryptionError(IntegrityError):
    """An encrypted target could not be opened.

    Wrong key, not addressed to this device, or altered in storage or transit.
    """


class TestVectorError(BundleError):
    """The loaded model's outputs disagree with the bundle's test vectors."""

    __test__ = False  # not a pytest test class


class UpdateRefusedError(BundleError):
    """The update metadata failed TUF verification; nothing from it is used."""


class StaleUpdateError(UpdateRefusedError):
    """The update metadata has expired (a freeze attack, or an offline bundle kept too long)."""


class RollbackRefusedError(UpdateRefusedError):
    """The update metadata is older than what this agent already trusts (a replay)."""


class ModelLoadError(ApplianceError):
    """A runtime could not load a model that passed verification."""


class StorageError(ApplianceError):
    """Writing to local storage failed; nothing half-written was kept."""


class InvalidInputError(ApplianceError):
    """A request is malformed: wrong shape, datatype, missing field, bad JSON."""


class UnprocessableInputError(InvalidInputError):
    """The body is well-formed JSON but not a valid request of its kind."""


class BodyTooLargeError(InvalidInputError):
    """A request body is over the service's limit (413)."""


class AuthenticationError(ApplianceError):
    """Credentials are missing, malformed, expired, revoked or not ours (401)."""


class PermissionDeniedError(ApplianceError):
    """The caller is known but may not do this (403)."""


class ResidencyRefusedError(PermissionDeniedError):
    """A residency rule forbids the flow; the message names the rule."""

    def __init__(self, message: str, *, rule: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.rule = rule


class ApprovalRequiredError(PermissionDeniedError):
    """A version would reach live traffic without the approvals the site requires."""


class RateLimitedError(ApplianceError):
    """Too many attempts from one client; retry after a while (429)."""


class BusyError(RateLimitedError):
    """A model has as many requests running and waiting as it may; retry shortly (429,
    ``Retry-After``)."""

    def __init__(self, message: str, *, retry_after_s: int = 1, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.retry_after_s = retry_after_s


class TimedOutError(ApplianceError):
    """The work took longer than its limit (504); it may still finish on its own."""


class NotFoundError(ApplianceError):
    """No such model, version or agent."""


class ConflictError(ApplianceError):
    """The request contradicts the current state."""


class IllegalStageTransitionError(ConflictError):
    """A model version may not move from its current stage to the one asked."""


class HubError(ApplianceError):
    """Talking to the hub failed."""


class HubUnavailableError(HubError):
    """The hub could not be reached or failed (connection, timeout, 5xx)."""


class HubRejectedError(HubError):
    """The hub refused the request (4xx); retrying the same request will not help."""

    def __init__(self, message: str, *, status_code: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status_code = status_code


def nested_too_deeply(where: str = "request body") -> InvalidInputError:
    """What a JSON document nested past the parser's recursion limit becomes (400)."""
    return InvalidInputError(
        f"{where} nests too deeply to be a request",
        hint="JSON arrays and objects may nest a few levels, not thousands",
    )
