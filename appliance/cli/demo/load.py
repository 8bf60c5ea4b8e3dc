"""Real inference traffic over HTTP, with every answer recorded."""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass, field

import httpx
import numpy as np


def v2_body(rows: np.ndarray, input_name: str = "input") -> dict[str, object]:
    return {
        "inputs": [
            {
                "name": input_name,
                "shape": list(rows.shape),
                "datatype": "FP32",
                "data": rows.astype(np.float32).reshape(-1).tolist(),
            }
        ]
    }


@dataclass
class Outcome:
    version: str | None
    latency_ms: float
    correct: bool | None
    error: str | None = None


@dataclass
class LoadResult:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error is not None]

    def latency_percentiles(self) -> dict[str, float]:
        ok = [o.latency_ms for o in self.outcomes if o.error is None]
        if not ok:
            return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
        p50, p95, p99 = np.percentile(ok, [50, 95, 99])
        return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}

    def versions(self) -> list[str]:
        """Versions seen, in the order they first answered."""
        seen: list[str] = []
        for o in self.outcomes:
            if o.version is not None and o.version not in seen:
                seen.append(o.version)
        return seen


def infer_once(
    client: httpx.Client, url: str, model: str, rows: np.ndarray, labels: np.ndarray | None
) -> Outcome:
    started = time.perf_counter()
    try:
        response = client.post(f"{url}/v2/models/{model}/infer", json=v2_body(rows))
        latency = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            return Outcome(
                None, latency, None, f"HTTP {response.status_code}: {response.text[:200]}"
            )
        body = response.json()
        out = body["outputs"][0]
        probs = np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])
        correct = bool((probs.argmax(axis=1) == labels).all()) if labels is not None else None
        return Outcome(body.get("model_version"), latency, correct)
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        return Outcome(None, (time.perf_counter() - started) * 1000, None, repr(exc))


class LoadThread(threading.Thread):
    """Sends one row at a time to an agent until stopped."""

    def __init__(
        self,
        url: str,
        model: str,
        features: np.ndarray,
        labels: np.ndarray,
        headers: dict[str, str] | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        super().__init__(daemon=True, name=f"load-{url}")
        self.url, self.model, self.headers, self.verify = url, model, headers, verify
        self.features, self.labels = features, labels
        self.result = LoadResult()
        self._stop_event = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10.0, headers=self.headers, verify=self.verify) as client:
            i = 0
            while not self._stop_event.is_set():
                row = i % len(self.features)
                self.result.outcomes.append(
                    infer_once(
                        client,
                        self.url,
                        self.model,
                        self.features[row : row + 1],
                        self.labels[row : row + 1],
                    )
                )
                i += 1

    def stop(self) -> LoadResult:
        self._stop_event.set()
        self.join(15)
        return self.result
