"""Plain ASGI plumbing for the few hot routes answered in front of Litestar.

Agents answer inference this way and the hub answers online feature lookups
this way (Litestar's request and response machinery costs about 100 µs a
request on a 2-core box; these routes are measured in hundreds of µs).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from appliance.errors import ApplianceError, BodyTooLargeError, NotFoundError
from appliance.ids import bad_number_in_path
from appliance.security.tls import certificate_sha256

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]



async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body; over ``limit`` bytes is refused before it is all read."""
    for key, value in scope["headers"]:
        if key == b"content-length" and value.isdigit() and int(value) > limit:
            raise BodyTooLargeError(f"request body is over the {limit} byte limit")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"request body is over the {limit} byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def header(scope: Scope, name: bytes) -> str | None:
    """A request header's value (``name`` in lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def client_certificate_sha256(scope: Scope) -> str | None:
    """SHA-256 (hex) of the DER of the verified certificate the client presented, if any
    (the ASGI TLS extension, as :mod:`appliance.peer_tls` fills it in)."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain")
    if not chain:
        return None
    digest: str | None = tls.get(_DIGEST)
    if digest is None:  # once per connection: every request on it shares this dict
        digest = tls[_DIGEST] = certificate_sha256(chain[0])
    return digest


_DIGEST = "appliance.client_cert_sha256"
"""Where :func:`client_certificate_sha256` keeps its answer in the TLS extension."""


async def respond(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    content_type: bytes = b"application/json",
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                *(headers or []),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def with_sane_paths(app: ASGIApp, error_body: Callable[[ApplianceError], bytes]) -> ASGIApp:
    """404 for a path with a segment that looks like a number but is no record id
    (:func:`appliance.ids.bad_number_in_path`), before any route sees it."""

    async def guard(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            bad = bad_number_in_path(scope["path"])
            if bad is not None:
                shown = bad if len(bad) <= 40 else bad[:39] + "…"
                exc = NotFoundError(
                    f"no such resource: {shown!r} is not an id",
                    hint="ids are ASCII digits within a 64-bit integer",
                )
                return await respond(send, 404, error_body(exc))
        return await app(scope, receive, send)

    return guard
