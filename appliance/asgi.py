"""Plain ASGI plumbing for the few hot routes answered in front of Litestar.

Agents answer inference this way and the hub answers online feature lookups
this way (Litestar's request and response machinery costs about 100 µs a
request on a 2-core box; these routes are measured in hundreds of µs).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from appliance import logs
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


_REQUEST_ID = logs.REQUEST_ID_HEADER.encode()


def with_request_id(app: ASGIApp) -> ASGIApp:
    """Every HTTP request runs with a request id (:mod:`appliance.logs`): the caller's
    ``X-Request-ID`` when it is a plain token, else a new one; the answer carries it."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        given = logs.accepted_request_id(header(scope, _REQUEST_ID))
        token = logs.request_id.set(given)

        async def send_with_id(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] != _REQUEST_ID]
                message["headers"] = [*headers, (_REQUEST_ID, given.encode())]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            logs.request_id.reset(token)

    return wrapped


def with_access_log(app: ASGIApp, logger: logging.Logger) -> ASGIApp:
    """One line per HTTP request when its answer is done: method, path (without its query),
    status and time taken; in JSON logs with the request's id, actor, model and version."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]  # what a client sees if the app ends without answering

        async def send_noting_status(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await app(scope, receive, send_noting_status)
        finally:
            took_ms = (time.perf_counter() - started) * 1000
            logger.info("%s %s %d %.1f ms", scope["method"], scope["path"], status[0], took_ms)

    return wrapped
