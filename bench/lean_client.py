"""A lean, sequential, keep-alive HTTP client and the latency statistics.

The same code drives every HTTP target, so its own cost (a few tens of µs per
request: ``http.client`` framing plus one JSON decode) is the same for all of
them. Bodies are encoded once, before the clock starts.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import msgspec
import numpy as np

HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class BenchError(RuntimeError):
    """Something the benchmark relies on did not work."""


def v2_request(rows: np.ndarray, input_name: str = "input") -> bytes:
    """One v2 inference request, as bytes (same shape as ``appliance.cli.demo.load.v2_body``)."""
    rows = rows.astype(np.float32)
    return msgspec.json.encode(
        {
            "inputs": [
                {
                    "name": input_name,
                    "shape": list(rows.shape),
                    "datatype": "FP32",
                    "data": rows.reshape(-1).tolist(),
                }
            ]
        }
    )


def first_output(answer: dict[str, Any]) -> np.ndarray:
    out = answer["outputs"][0]
    return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])


class LeanClient:
    """One persistent HTTP/1.1 connection; ``post`` returns the decoded JSON answer."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self._conn = http.client.HTTPConnection(host, port, timeout=timeout)
        self._conn.connect()  # sets TCP_NODELAY

    def post(self, path: str, body: bytes) -> dict[str, Any]:
        self._conn.request("POST", path, body, HEADERS)
        response = self._conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise BenchError(f"POST {path} answered {response.status}: {data[:300]!r}")
        answer: dict[str, Any] = msgspec.json.decode(data)
        return answer

    def get_status(self, path: str) -> int:
        self._conn.request("GET", path, headers=HEADERS)
        response = self._conn.getresponse()
        response.read()
        return response.status

    def close(self) -> None:
        self._conn.close()


def get_status(host: str, port: int, path: str, timeout: float = 1.0) -> int | None:
    """One GET on a fresh connection; None when nothing answers."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


@dataclass
class Stats:
    n: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    throughput_rps: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def stats(latencies_ns: Sequence[int], wall_s: float) -> Stats:
    ms = np.asarray(latencies_ns, dtype=np.float64) / 1e6
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return Stats(
        n=len(ms),
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        mean_ms=float(ms.mean()),
        throughput_rps=len(ms) / wall_s,
    )


def time_calls(call: Callable[[int], object], n: int, warmup: int) -> tuple[list[int], float]:
    """Run ``call(i)`` ``warmup`` times untimed, then ``n`` times timed, one after another.

    Returns each call's latency in ns and the wall time of the timed loop in s.
    """
    for i in range(warmup):
        call(i)
    latencies = [0] * n
    clock = time.perf_counter_ns
    started = clock()
    for i in range(n):
        t0 = clock()
        call(i)
        latencies[i] = clock() - t0
    return latencies, (clock() - started) / 1e9
