"""Where the agent's time goes: its ASGI app against the raw-ASGI floor, in-process.

No sockets and no uvicorn: each app is called directly with one pre-built v2
request, so the difference between the two is the cost of Litestar plus the
agent's handler (routing, request object, body read, v2 checks, response
building). A cProfile of the agent's app follows, sorted by own time.

Needs an agent data dir with a model installed, e.g. the one that
``python bench/bench_inference.py --keep`` leaves behind::

    python bench/profile_agent.py --data-dir /tmp/appliance-bench-XXXX/agent
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import msgspec
import numpy as np
from floor_asgi import ASGIApp, Message, V2Request, make_session
from floor_asgi import create_app as create_floor
from lean_client import v2_request
from litestar import MediaType, Response

from agent import v2_codec
from agent.app import build_core
from agent.app import create_app as create_agent
from agent.core import AgentCore
from appliance.settings import AgentSettings, ServingSettings


def _scope(path: str, body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8701),
        "state": {},
    }


async def _lifespan(app: ASGIApp, kind: str) -> asyncio.Future[Any]:
    """Start ``app``'s lifespan; the task runs until cancelled (which shuts the app down:
    cancel it only when done with the app)."""
    sent: list[Message] = []
    messages = [{"type": f"lifespan.{kind}"}]

    async def receive() -> Message:
        if messages:
            return messages.pop()
        await asyncio.sleep(3600)
        return {"type": "lifespan.shutdown"}

    async def send(message: Message) -> None:
        sent.append(message)

    task = asyncio.ensure_future(app({"type": "lifespan", "state": {}}, receive, send))
    while not sent:
        await asyncio.sleep(0)
    return task


async def _call(app: ASGIApp, path: str, body: bytes) -> bytes:
    out: list[bytes] = []
    status = 0

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            out.append(message.get("body", b""))

    await app(_scope(path, body), receive, send)
    if status != 200:
        raise RuntimeError(f"{path} answered {status}: {b''.join(out)[:200]!r}")
    return b"".join(out)


async def _time(app: ASGIApp, path: str, body: bytes, n: int) -> float:
    """µs per request: the lowest of 3 medians over ``n`` direct calls, after a warm-up.

    The lowest of several medians keeps a busy neighbour (or hypervisor steal) out.
    """
    for _ in range(200):
        await _call(app, path, body)
    medians = []
    for _ in range(3):
        samples = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            await _call(app, path, body)
            samples.append(time.perf_counter_ns() - t0)
        medians.append(float(np.median(samples)) / 1e3)
    return min(medians)


def _handler_parts(core: AgentCore, model: str, body: bytes, session: Any) -> None:
    """The agent handler's steps one by one (best of 5 x 2000 calls each)."""
    loaded = core.repository.get(model)
    request = v2_codec.decode_request(body)
    feed = v2_codec.to_feed(request, loaded.manifest)
    names = v2_codec.requested_outputs(request, loaded.manifest)
    results = loaded.runtime.infer(feed)
    floor_decoder = msgspec.json.Decoder(V2Request)
    steps: list[tuple[str, Callable[[], object]]] = [
        ("repository.get", lambda: core.repository.get(model)),
        ("v2_codec.decode_request", lambda: v2_codec.decode_request(body)),
        (
            "v2_codec.to_feed (checks + np.asarray)",
            lambda: v2_codec.to_feed(request, loaded.manifest),
        ),
        (
            "v2_codec.requested_outputs",
            lambda: v2_codec.requested_outputs(request, loaded.manifest),
        ),
        ("runtime.infer (ORT session.run)", lambda: loaded.runtime.infer(feed)),
        (
            "v2_codec.encode_response",
            lambda: v2_codec.encode_response(model, loaded.version, None, results, names),
        ),
        (
            "litestar Response(content=bytes)",
            lambda: Response(content=b"{}", media_type=MediaType.JSON),
        ),
        ("floor: msgspec decode", lambda: floor_decoder.decode(body)),
        ("floor: session.run", lambda: session.run(names, feed)),
    ]
    print("\nthe handler's steps, batch 1 (µs per call, best of 5 x 2000):")
    for label, step in steps:
        best = min(timeit.repeat(step, number=2000, repeat=5)) / 2000 * 1e6
        print(f"  {label:<42}{best:8.2f}")


async def run(data_dir: Path, model: str, n: int, top: int) -> None:
    settings = AgentSettings(
        hub_url="http://127.0.0.1:9",
        zone="ae-dxb",
        data_dir=data_dir,
        serving=ServingSettings(open_data_plane=True),
    )
    core = build_core(settings, start_sync=False)
    agent_app = cast(ASGIApp, create_agent(core))
    loaded = core.repository.get(model)
    onnx = data_dir.parent / "model.onnx"  # bench_inference's copy: bundles are sealed
    if not onnx.exists():
        raise SystemExit(f"{onnx} is missing: give the data dir bench_inference --keep left")
    floor_app = create_floor(str(onnx), model, str(loaded.version))
    lifespan = await _lifespan(agent_app, "startup")
    _handler_parts(
        core, model, v2_request(np.ones((1, 30), dtype=np.float32)), make_session(str(onnx))
    )
    path = f"/v2/models/{model}/infer"
    rng = np.random.default_rng(0)
    n_features = int(loaded.manifest.inputs[0].shape[-1])
    for batch in (1, 32):
        body = v2_request(rng.normal(size=(batch, n_features)).astype(np.float32) + 10)
        agent_us = await _time(agent_app, path, body, n)
        floor_us = await _time(floor_app, path, body, n)
        print(
            f"batch {batch:>2}: agent app {agent_us:7.1f} µs, floor app {floor_us:7.1f} µs, "
            f"agent overhead {agent_us - floor_us:6.1f} µs per request (in-process, no HTTP)"
        )
    body = v2_request(rng.normal(size=(1, n_features)).astype(np.float32) + 10)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        await _call(agent_app, path, body)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    print(f"\ncProfile of {n} batch-1 requests through the agent's app (own time first):")
    print(text.getvalue())
    lifespan.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="an agent's data dir")
    parser.add_argument("--model", default="breast-cancer")
    parser.add_argument("-n", type=int, default=5000, help="requests per measurement")
    parser.add_argument("--top", type=int, default=30, help="profile lines to print")
    args = parser.parse_args()
    import uvloop  # what uvicorn's loop="auto" picks for the agent

    uvloop.run(run(args.data_dir, args.model, args.n, args.top))


if __name__ == "__main__":
    main()
