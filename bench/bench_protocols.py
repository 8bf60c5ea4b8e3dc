"""Protocols and load: a real multi-input transformer served by a real agent.

A BERT sequence classifier built by the ``transformers`` package from a config (BERT-mini
sizes, fixed-seed weights, no download; three int64 inputs, dynamic batch and sequence
axes) is uploaded to a real hub and served by a real agent over loopback. The same
requests, encoded before the clock starts, go to it as HTTP JSON, as HTTP binary tensor
data (what ``tritonclient`` sends by default) and over gRPC; direct ONNX Runtime in this
process, with the agent's session options, is the baseline of the same run. While eight
clients load the agent, a ninth asks ``/v2/health/live`` every 20 ms.

Run: ``python bench/bench_protocols.py [--quick] [--json PATH]``. Exit status 0 when
every measurement was taken (targets met or not), 1 when something broke. Each target
is printed on its own line with PASS or MISS:

* agent throughput at 8 clients >= 0.95 x direct ONNX Runtime's best (1, 2 or 8 threads);
* HTTP binary and gRPC p50 <= 0.5 x HTTP JSON's at seq 128, batch 8;
* ``/v2/health/live`` p99 under that load <= 10 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import msgspec
import numpy as np
import onnxruntime as ort
from bench_run import add_agent_env, agent_env, run, target_line
from lean_client import BenchError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.harness: the model

from agent.grpc_v2 import open_inference_grpc_pb2 as pb
from agent.grpc_v2 import open_inference_grpc_pb2_grpc as pb_grpc
from appliance.cli.demo.processes import ServiceProcess, agent_process, hub_process
from appliance.cli.demo.site import bootstrap_site
from tests.harness.models import bert_feed, make_tiny_bert

MODEL = "bert-mini"
SEQ = 128
BATCHES = (1, 8)
TARGET_THROUGHPUT = 0.95
TARGET_WIRE = 0.5
TARGET_HEALTH_P99_MS = 10.0
Call = Callable[[int], None]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- requests, encoded once ------------------------------------------------------------


def json_body(feed: dict[str, np.ndarray]) -> bytes:
    tensors = [
        {"name": k, "shape": list(v.shape), "datatype": "INT64", "data": v.ravel().tolist()}
        for k, v in feed.items()
    ]
    return msgspec.json.encode({"inputs": tensors})


def binary_body(feed: dict[str, np.ndarray]) -> tuple[bytes, int]:
    """Triton's binary tensor data extension: JSON header, then the raw tensors; every
    output asked for in binary too."""
    tensors = [
        {
            "name": k,
            "shape": list(v.shape),
            "datatype": "INT64",
            "parameters": {"binary_data_size": v.nbytes},
        }
        for k, v in feed.items()
    ]
    header = msgspec.json.encode({"inputs": tensors, "parameters": {"binary_data_output": True}})
    return header + b"".join(v.astype("<i8").tobytes() for v in feed.values()), len(header)


def grpc_request(feed: dict[str, np.ndarray]) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=MODEL)
    for name, values in feed.items():
        request.inputs.add(name=name, datatype="INT64", shape=list(values.shape))
        request.raw_input_contents.append(values.astype("<i8").tobytes())
    return request


# -- clients ---------------------------------------------------------------------------


class Http:
    def __init__(self, port: int, model: str = MODEL) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.path = f"/v2/models/{model}/infer"

    def post(self, body: bytes, headers: dict[str, str]) -> bytes:
        self.conn.request("POST", self.path, body, headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise BenchError(f"agent answered {response.status}: {data[:200]!r}")
        return data


def http_json(port: int, bodies: list[bytes], model: str = MODEL) -> Call:
    client = Http(port, model)
    headers = {"Content-Type": "application/json"}
    return lambda i: msgspec.json.decode(client.post(bodies[i % len(bodies)], headers)) and None


def http_binary(port: int, bodies: list[tuple[bytes, int]]) -> Call:
    client = Http(port)

    def call(i: int) -> None:
        body, length = bodies[i % len(bodies)]
        headers = {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(length),
        }
        client.post(body, headers)

    return call


def grpc_client(address: str, requests: list[pb.ModelInferRequest]) -> Call:
    stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(address))  # type: ignore[no-untyped-call]
    return lambda i: stub.ModelInfer(requests[i % len(requests)], timeout=60) and None


def direct(session: ort.InferenceSession, feeds: list[dict[str, np.ndarray]]) -> Call:
    return lambda i: session.run(None, feeds[i % len(feeds)]) and None


def load(make_call: Callable[[], Call], clients: int, per_client: int) -> dict[str, float]:
    """``clients`` threads, each with its own connection, ``per_client`` calls each after
    two warm-up calls: throughput and latency percentiles."""
    calls = [make_call() for _ in range(clients)]
    for call in calls:
        call(0)
        call(1)
    latencies: list[list[int]] = [[] for _ in calls]
    start = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        start.wait()
        try:
            for i in range(per_client):
                began = time.perf_counter_ns()
                calls[index](i + index)
                latencies[index].append(time.perf_counter_ns() - began)
        except BaseException as exc:  # reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    if errors:
        raise BenchError(f"a client failed: {errors[0]!r}")
    every = np.concatenate([np.asarray(x) for x in latencies]) / 1e6
    return {
        "per_s": clients * per_client / wall,
        "p50_ms": float(np.percentile(every, 50)),
        "p99_ms": float(np.percentile(every, 99)),
    }


class HealthProbe(threading.Thread):
    """``GET /v2/health/live`` every 20 ms on its own connection, as a supervisor would."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.stopping, self.latencies_ms = port, threading.Event(), list[float]()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self.stopping.wait(0.02):
            began = time.perf_counter()
            conn.request("GET", "/v2/health/live")
            conn.getresponse().read()
            self.latencies_ms.append((time.perf_counter() - began) * 1e3)


# -- the run ---------------------------------------------------------------------------


def deploy(
    root: Path, onnx_bytes: bytes, env: dict[str, str], model: str = MODEL
) -> tuple[ServiceProcess, ServiceProcess]:
    """A real hub and agent on loopback, ``onnx_bytes`` published as ``model`` and served."""
    site = bootstrap_site(root)
    hub = hub_process(site.hub_dir, tls=site.tls)
    hub.start()
    hub.wait_healthy()
    with site.client(hub.url, "admin") as admin:
        token = admin.create_enrolment_token("ae-dxb")["token"]
    agent = agent_process(
        "bench-agent",
        root / "agent",
        hub.url,
        site.trusted_root,
        enrol_token=token,
        hub_ca=site.ca_file,
        runtime="onnxruntime",
        open_data_plane=True,
        plain_http=True,
        env=env,
    )
    agent.start()
    agent.wait_healthy()
    with site.client(hub.url, "alice") as engineer, site.client(hub.url, "omar") as approver:
        info = engineer.upload_model(model, onnx_bytes)
        engineer.change_stage(model, info.version, "staging")
        approver.change_stage(model, info.version, "production")
    port = int(agent.url.rsplit(":", 1)[1])
    deadline = time.monotonic() + 180
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", f"/v2/models/{model}/ready")
        if conn.getresponse().status == 200:
            return hub, agent
        if time.monotonic() > deadline:
            raise BenchError("the agent did not serve the model within 180 s")
        time.sleep(0.2)


def measure(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    hidden, layers = (64, 1) if args.quick else (256, 4)
    log(f"building BERT (hidden {hidden}, {layers} layers) with transformers…")
    onnx_bytes = make_tiny_bert(3, hidden=hidden, layers=layers)
    env = agent_env(args)
    hub, agent = deploy(root, onnx_bytes, env)
    try:
        return _measure(args, onnx_bytes, agent)
    finally:
        agent.stop()
        hub.stop()


def _measure(args: argparse.Namespace, onnx_bytes: bytes, agent: ServiceProcess) -> dict[str, Any]:
    port, address = int(agent.url.rsplit(":", 1)[1]), agent.grpc_address or ""
    options = ort.SessionOptions()  # the agent's: one intra-op thread per model
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    figures: dict[str, Any] = {}
    for batch in BATCHES:
        feeds = [bert_feed(batch, SEQ, 3, seed=s) for s in range(8)]
        _check(port, feeds[0], session.run(None, feeds[0])[0])
        json_bodies = [json_body(x) for x in feeds]
        binary_bodies = [binary_body(x) for x in feeds]
        grpc_requests = [grpc_request(x) for x in feeds]
        makers: dict[str, Callable[[], Call]] = {
            "direct ORT": partial(direct, session, feeds),
            "HTTP JSON": partial(http_json, port, json_bodies),
            "HTTP binary": partial(http_binary, port, binary_bodies),
            "gRPC": partial(grpc_client, address, grpc_requests),
        }
        for clients in (1, 2, 8):
            for name, make in makers.items():
                if clients == 2 and name != "direct ORT":
                    continue  # direct ORT's best may be at one thread per core
                probe = HealthProbe(port) if (name, clients) == ("HTTP binary", 8) else None
                if probe is not None:
                    probe.start()
                result = load(make, clients, max(2, args.requests // clients // batch))
                if probe is not None:
                    probe.stopping.set()
                    probe.join()
                    result["health_p99_ms"] = float(np.percentile(probe.latencies_ms, 99))
                figures[f"{name}|{batch}|{clients}"] = result
                log(f"{name:12} batch {batch} clients {clients}: " + _brief(result))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", f"/v2/models/{MODEL}/stats")
    (counts,) = json.loads(conn.getresponse().read())["model_stats"]
    log(f"agent: {counts['inference_count']} requests in {counts['execution_count']} runs")
    return figures


def _brief(result: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3g}" for k, v in result.items())


def targets(figures: dict[str, Any]) -> list[tuple[str, float, str, float]]:
    """(what, measured, comparison, target) for each target line."""
    lines = []
    for batch in BATCHES:
        best = max(figures[f"direct ORT|{batch}|{c}"]["per_s"] for c in (1, 2, 8))
        agent = max(figures[f"{w}|{batch}|8"]["per_s"] for w in ("HTTP binary", "gRPC"))
        lines.append(
            (
                f"agent/direct ORT throughput, b{batch} 8 clients",
                agent / best,
                ">=",
                TARGET_THROUGHPUT,
            )
        )
    json_p50 = figures["HTTP JSON|8|1"]["p50_ms"]
    for wire in ("HTTP binary", "gRPC"):
        ratio = figures[f"{wire}|8|1"]["p50_ms"] / json_p50
        lines.append((f"{wire}/JSON p50, seq {SEQ} b8", ratio, "<=", TARGET_WIRE))
    health = max(figures[f"HTTP binary|{b}|8"]["health_p99_ms"] for b in BATCHES)
    lines.append(("/v2/health/live p99 under load, ms", health, "<=", TARGET_HEALTH_P99_MS))
    return lines


def render(figures: dict[str, Any]) -> str:
    out = [f"{'target':<14}{'batch':>6}{'clients':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"]
    for key, result in figures.items():
        name, batch, clients = key.split("|")
        out.append(
            f"{name:<14}{batch:>6}{clients:>8}{result['per_s'] * int(batch):>10.1f}"
            f"{result['p50_ms']:>9.2f}{result['p99_ms']:>9.2f}"
        )
    out.append("(req/s counts rows: requests per second times the batch)")
    out.append("")
    out += [target_line(*line) for line in targets(figures)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model and few requests")
    parser.add_argument("--requests", type=int, help="rows per target and client count")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON here")
    add_agent_env(parser, "APPLIANCE_BATCHING=bert-mini=8:2")
    args = parser.parse_args(argv)
    args.requests = args.requests or (48 if args.quick else 2000)
    return run(
        "appliance-bench-protocols-",
        lambda root: measure(args, root),
        render,
        args.json,
        broken=(grpc.RpcError,),
    )


def _check(port: int, feed: dict[str, np.ndarray], expected: np.ndarray) -> None:
    answer = json.loads(Http(port).post(json_body(feed), {"Content-Type": "application/json"}))
    got = np.asarray(answer["outputs"][0]["data"], np.float32).reshape(expected.shape)
    if not np.allclose(got, expected, rtol=1e-4, atol=1e-5):
        raise BenchError("the agent answers differently from direct ONNX Runtime")


if __name__ == "__main__":
    sys.exit(main())
