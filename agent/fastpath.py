"""The inference hot path as a plain ASGI layer in front of the Litestar app.

``POST /v2/models/{name}/infer`` and ``…/versions/{version}/infer`` are the
only requests whose speed matters; measured on a 2-core box, Litestar's request
and response machinery cost about 100 µs of a 0.6 ms round trip there. This
layer answers those two routes directly (body limit, errors and all) and hands
every other request — and the lifespan — to Litestar unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent.access import DataPlaneAccess
from agent.lanes import InferenceLanes
from agent.v2_codec import Answer, encode_error
from appliance import logs
from appliance.asgi import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    client_certificate_sha256,
    header,
    read_body,
    respond,
)
from appliance.errors import ApplianceError, BodyTooLargeError, BusyError, InvalidInputError
from appliance.http_status import status_for
from appliance.ids import parse_id

log = logging.getLogger(__name__)

InferFn = Callable[[str, int | None, bytes, str | None, int | None], Answer]
"""(model, version or None, request body, subject id or None, JSON header length or None)
→ the answer."""
HEADER_LENGTH = "inference-header-content-length"
"""The binary tensor data extension's header: how long the body's JSON part is."""


def header_length(value: str | None) -> int | None:
    """``Inference-Header-Content-Length`` as a number; 400 for anything but digits."""
    if value is None:
        return None
    length = parse_id(value.strip())
    if length is None:
        raise InvalidInputError(f"Inference-Header-Content-Length: {value[:32]!r} is no length")
    return length


def match_infer_path(path: str) -> tuple[str, int | None] | None:
    """``(name, version)`` for the two infer routes, else None."""
    parts = path.split("/")
    # ["", "v2", "models", name, "infer"] or [..., name, "versions", v, "infer"]
    if len(parts) < 5 or parts[1] != "v2" or parts[2] != "models" or parts[-1] != "infer":
        return None
    if len(parts) == 5 and parts[3]:
        return parts[3], None
    if len(parts) == 7 and parts[3] and parts[4] == "versions":
        version = parse_id(parts[5])
        return None if version is None else (parts[3], version)
    return None


def _subject(scope: Scope) -> str | None:
    """The ``X-Subject-Id`` header: who the request is for, for sticky A/B cohorts."""
    value = header(scope, b"x-subject-id")
    return value or None


def with_fast_inference(
    app: ASGIApp,
    infer: InferFn,
    max_body_bytes: int,
    access: DataPlaneAccess | None = None,
    lanes: InferenceLanes | None = None,
) -> ASGIApp:
    """Answer the two infer routes here; ``access`` checks the caller's inference key
    before the body is read; the model runs in its lane (:mod:`agent.lanes`), off the
    event loop, so probes and status never wait behind inference."""
    lanes = lanes or InferenceLanes()

    async def fast(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await app(scope, receive, send)
        route = match_infer_path(scope["path"])
        if route is None:
            return await app(scope, receive, send)
        logs.model.set(route[0])  # this request's log lines name the model and version
        if route[1] is not None:
            logs.version.set(str(route[1]))
        try:
            if access is not None:
                logs.actor.set(
                    access.check(
                        header(scope, b"authorization"), route[0], client_certificate_sha256(scope)
                    )
                )
            body = await read_body(scope, receive, max_body_bytes)
            subject, length = _subject(scope), header_length(header(scope, HEADER_LENGTH.encode()))
            answer = await lanes.run(
                route[0], lambda: infer(route[0], route[1], body, subject, length), len(body)
            )
        except ConnectionResetError:
            return None
        except BodyTooLargeError as exc:
            return await respond(send, 413, encode_error(str(exc)))
        except BusyError as exc:
            retry = [(b"retry-after", str(exc.retry_after_s).encode())]
            return await respond(send, 429, encode_error(str(exc)), retry)
        except ApplianceError as exc:
            return await respond(send, status_for(exc), encode_error(str(exc)))
        except Exception:
            log.exception("inference failed on %s", scope["path"])
            return await respond(send, 500, encode_error("internal error; see the agent's log"))
        if answer.header_length is None:
            return await respond(send, 200, answer.body)
        return await respond(
            send,
            200,
            answer.body,
            [(HEADER_LENGTH.encode(), str(answer.header_length).encode())],
            content_type=b"application/octet-stream",
        )

    return fast
