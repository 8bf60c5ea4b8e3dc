"""Serving processes: one agent port answered by one process and by two (``--workers``).

A small classifier (30 features, as the demo's model; a MatMul and a softmax, so HTTP and
not the model holds the core) is published through a real hub and served by a real
agent over loopback. The agent is started alternately with ``APPLIANCE_SERVING_PROCESSES``
1 and 2 on the same data directory; each time, 16 clients send batch-1 JSON requests
over keep-alive connections, encoded before the clock starts. The clients are 2 client
processes of 8 connections each, in a select loop that reads answers raw: ``http.client``
in threads cost more CPU per request than the agent itself, on the same cores. They run
on the same machine as the agent and take their share of its cores; the report prints
the agent's CPU per request.

Run: ``python bench/bench_workers.py [--quick] [--rounds N] [--json PATH]``. Exit status
0 when every measurement was taken (targets met or not), 1 when something broke. Target,
printed with PASS or MISS: two processes' throughput >= 1.7 x one's at 16 clients.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import multiprocessing
import os
import selectors
import socket
import statistics
import sys
import time
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import numpy as np
from bench_protocols import deploy, log
from bench_run import add_agent_env, agent_env, run, target_line
from lean_client import BenchError, v2_request
from servers import process_cpu_s

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.harness: the model

from appliance.cli.demo.processes import ServiceProcess
from tests.harness.models import make_tiny_onnx

MODEL = "small"
FEATURES = 30
CLIENT_PROCESSES, CONNECTIONS = 2, 8
PROCESSES = (1, 2)
TARGET_SPEED_UP = 1.7


class _Connection:
    """One keep-alive connection sending pre-built requests and reading the answers raw."""

    def __init__(self, port: int, requests: list[bytes]) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.requests, self.sent, self.buffer = requests, 0, b""
        self.began = 0

    def send(self) -> None:
        self.began = time.perf_counter_ns()
        self.sock.sendall(self.requests[self.sent % len(self.requests)])
        self.sent += 1

    def answered(self) -> bool:
        """Read what arrived; whether a whole answer is in (then it is consumed)."""
        self.buffer += self.sock.recv(1 << 16)
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = self.buffer[:end].lower()
        at = head.find(b"content-length:") + len(b"content-length:")
        length = int(head[at : head.find(b"\r\n", at) if b"\r\n" in head[at:] else None])
        if len(self.buffer) < end + 4 + length:
            return False
        if head[9:12] != b"200":
            raise BenchError(f"the agent answered {self.buffer[: end + 4 + length][:300]!r}")
        self.buffer = self.buffer[end + 4 + length :]
        return True


def _client(port: int, connections: int, per_connection: int, go: Event, out: Any) -> None:
    """One client process: ``connections`` keep-alive connections in one select loop, one
    request outstanding on each (a few µs of Python per request, so the agent, not the
    client, is what is measured)."""
    rng = np.random.default_rng(os.getpid())
    bodies = [v2_request(rng.normal(size=(1, FEATURES)).astype(np.float32)) for _ in range(16)]
    requests = [
        f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(b)}\r\n\r\n".encode()
        + b
        for b in bodies
    ]
    conns = [_Connection(port, requests) for _ in range(connections)]
    selector = selectors.DefaultSelector()
    for conn in conns:
        selector.register(conn.sock, selectors.EVENT_READ, conn)
    go.wait()
    latencies: list[int] = []
    began = time.monotonic()
    for conn in conns:
        conn.send()
    busy = len(conns)
    while busy:
        for key, _ in selector.select(timeout=60):
            conn = key.data
            if not conn.answered():
                continue
            latencies.append(time.perf_counter_ns() - conn.began)
            if conn.sent < per_connection:
                conn.send()
            else:
                busy -= 1
    ended = time.monotonic()
    every = np.asarray(latencies) / 1e6
    out.put(
        (
            began,
            ended,
            len(latencies),
            float(np.percentile(every, 50)),
            float(np.percentile(every, 99)),
        )
    )


def drive(port: int, requests: int) -> dict[str, float]:
    """16 clients on ``port``: requests per second over the whole run, latency p50/p99."""
    context = multiprocessing.get_context("spawn")
    go, out = context.Event(), context.Queue()
    per_connection = max(2, requests // (CLIENT_PROCESSES * CONNECTIONS))
    clients = [
        context.Process(target=_client, args=(port, CONNECTIONS, per_connection, go, out))
        for _ in range(CLIENT_PROCESSES)
    ]
    for client in clients:
        client.start()
    time.sleep(1.0)  # spawned interpreters import numpy before the start signal
    go.set()
    results = [out.get(timeout=600) for _ in clients]
    for client in clients:
        client.join()
        if client.exitcode != 0:
            raise BenchError(f"a client process exited with {client.exitcode}")
    began, ended = min(r[0] for r in results), max(r[1] for r in results)
    total = sum(r[2] for r in results)
    return {
        "per_s": total / (ended - began),
        "requests": total,
        "p50_ms": statistics.median(r[3] for r in results),
        "p99_ms": max(r[4] for r in results),
    }


def _agent_pids(port: int) -> set[int]:
    """The processes that answered ``/agent/status`` over fresh connections."""
    pids = set()
    for _ in range(20):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/agent/status")
        status = json.loads(conn.getresponse().read())
        conn.close()
        if any(m["name"] == MODEL for m in status["models"]):
            pids.add(status["process"]["pid"])
    return pids


def start(agent: ServiceProcess, processes: int) -> ServiceProcess:
    running = dataclasses.replace(
        agent, env={**agent.env, "APPLIANCE_SERVING_PROCESSES": str(processes)}, process=None
    )
    running.start()
    running.wait_healthy()
    port = int(running.url.rsplit(":", 1)[1])
    deadline = time.monotonic() + 60
    while len(_agent_pids(port)) < processes:
        if time.monotonic() > deadline:
            raise BenchError(f"{processes} processes did not all serve {MODEL} within 60 s")
        time.sleep(0.2)
    return running


def measure(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    env = agent_env(args)
    hub, agent = deploy(root, make_tiny_onnx(FEATURES), env, MODEL)
    agent.stop()
    port = int(agent.url.rsplit(":", 1)[1])
    rounds: dict[int, list[dict[str, float]]] = {n: [] for n in PROCESSES}
    try:
        for r in range(args.rounds):
            for processes in PROCESSES if r % 2 == 0 else PROCESSES[::-1]:
                running = start(agent, processes)
                pid = running.process.pid if running.process else 0
                try:
                    cpu = _group_cpu_s(pid)
                    result = drive(port, args.requests)
                    result["agent_cpu_s"] = _group_cpu_s(pid) - cpu
                finally:
                    running.stop()
                rounds[processes].append(result)
                log(
                    f"round {r + 1}: {processes} process(es): {result['per_s']:.0f} req/s, "
                    f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms"
                )
    finally:
        hub.stop()
    return {
        "cpus": os.cpu_count(),
        "clients": CLIENT_PROCESSES * CONNECTIONS,
        "requests_per_round": args.requests,
        "rounds": {str(n): rs for n, rs in rounds.items()},
    }


def _group_cpu_s(pid: int) -> float:
    """CPU seconds of ``pid`` and its children (the serving processes)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return sum(process_cpu_s(p) for p in (pid, *map(int, children)))


def render(figures: dict[str, Any]) -> str:
    best = {n: max(r["per_s"] for r in rs) for n, rs in figures["rounds"].items()}
    out = [
        f"{figures['clients']} clients (batch 1, JSON) on a {figures['cpus']}-core machine, "
        "clients included",
        f"{'processes':<11}{'best req/s':>11}{'median req/s':>14}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'agent CPU/req':>15}",
    ]
    for n, rs in figures["rounds"].items():
        top = max(rs, key=lambda r: r["per_s"])
        cpu_us = statistics.median(r["agent_cpu_s"] / r["requests"] * 1e6 for r in rs)
        out.append(
            f"{n:<11}{best[n]:>11.0f}{statistics.median(r['per_s'] for r in rs):>14.0f}"
            f"{top['p50_ms']:>9.2f}{top['p99_ms']:>9.2f}{cpu_us:>12.0f} µs"
        )
    ratio = best["2"] / best["1"]
    out.append("")
    out.append(
        target_line("2 processes / 1, throughput at 16 clients", ratio, ">=", TARGET_SPEED_UP)
    )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round, few requests")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 3)")
    parser.add_argument("--requests", type=int, help="requests per round (default 20000)")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON here")
    add_agent_env(parser, "APPLIANCE_INFERENCE_WORKERS=0")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.requests = args.requests or (640 if args.quick else 20000)
    return run("appliance-bench-workers-", lambda root: measure(args, root), render, args.json)


if __name__ == "__main__":
    sys.exit(main())
