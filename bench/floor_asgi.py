"""The floor for a Python HTTP inference service: raw ASGI, no framework.

Served by uvicorn with the agent's options (httptools, loop auto, no access
log, log level warning). It parses the v2 JSON with msgspec, checks only what
it needs to build the tensor, runs the same ONNX Runtime session the agent
would (1 intra-op thread, 1 inter-op thread, ORT_ENABLE_ALL) on the event
loop, and answers v2 JSON. Anything the agent does beyond this is overhead.

Run: ``python bench/floor_asgi.py --model PATH --port N [--name NAME]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import numpy as np
import onnxruntime as ort

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class V2Input(msgspec.Struct):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]


class V2Request(msgspec.Struct):
    inputs: list[V2Input]
    id: str | None = None


def make_session(model_path: str, threads: int = 1) -> ort.InferenceSession:
    """The agent's session options (agent/runtime/onnx.py)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(
        model_path, sess_options=options, providers=["CPUExecutionProvider"]
    )


_JSON = [(b"content-type", b"application/json")]


def create_app(model_path: str, model_name: str, model_version: str = "1") -> ASGIApp:
    session = make_session(model_path)
    output_names = [o.name for o in session.get_outputs()]
    decoder = msgspec.json.Decoder(V2Request)
    encoder = msgspec.json.Encoder()
    infer_path = f"/v2/models/{model_name}/infer"

    async def respond(send: Send, status: int, body: bytes) -> None:
        headers = [*_JSON, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if scope["method"] == "POST" and path == infer_path:
            chunks = []
            more = True
            while more:
                message = await receive()
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            try:
                request = decoder.decode(b"".join(chunks))
                feed = {
                    i.name: np.asarray(i.data, dtype=np.float32).reshape(i.shape)
                    for i in request.inputs
                }
                results = session.run(output_names, feed)
            except (msgspec.DecodeError, ValueError) as exc:
                await respond(send, 400, encoder.encode({"error": str(exc)}))
                return
            outputs = [
                {
                    "name": name,
                    "datatype": "FP32",
                    "shape": list(array.shape),
                    "data": array.reshape(-1).tolist(),
                }
                for name, array in zip(output_names, results, strict=True)
            ]
            answer: dict[str, Any] = {
                "model_name": model_name,
                "model_version": model_version,
                "outputs": outputs,
            }
            if request.id is not None:
                answer["id"] = request.id
            await respond(send, 200, encoder.encode(answer))
        elif path in ("/v2/health/ready", "/v2/health/live"):
            await respond(send, 200, b'{"ready":true}')
        else:
            await respond(send, 404, b'{"error":"not found"}')

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="ONNX file")
    parser.add_argument("--name", default="breast-cancer", help="model name in the URL")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    import uvicorn

    # The same options as appliance/cli/serve.py gives the agent.
    uvicorn.run(
        create_app(args.model, args.name),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="auto",
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
