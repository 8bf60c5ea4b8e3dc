"""Prometheus metrics of an agent (``GET /metrics``, text format).

Counters and latency histograms are updated on the request path through
per-(model, version, variant) children cached on first use; everything else
(installed versions, hub reachability, outbox depth, drift p-values) is read
when Prometheus scrapes, so it costs requests nothing. With ``--workers N`` the
counters shown are every process's (:mod:`agent.peers`), added up at scrape time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from agent.drift.monitor import DriftMonitor
from agent.outbox import Outbox
from agent.peers import REQUESTS, Peers, SampleKey, Totals
from agent.repository import LoadedModel, ModelRepository

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class StateSources:
    repository: ModelRepository
    outbox: Outbox
    drift: DriftMonitor
    hub_reachable: Callable[[], bool]
    admitted: Callable[[str], int] = lambda _model: 0
    """Inference requests running or waiting, per model (:mod:`agent.lanes`)."""
    drift_results: Callable[[], dict[tuple[str, int], tuple[bool, list[float]]]] | None = None
    """(drifted, p-values) per model version; default: ``drift``'s latest."""

    def drifts(self) -> dict[tuple[str, int], tuple[bool, list[float]]]:
        if self.drift_results is not None:
            return self.drift_results()
        return {k: (r.drifted, r.p_values) for k, r in self.drift.latest().items()}


class _StateCollector(Collector):
    def __init__(self, sources: StateSources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        s = self.sources
        version = GaugeMetricFamily(
            "appliance_agent_model_version", "Model version being served", labels=["model"]
        )
        admitted = GaugeMetricFamily(
            "appliance_agent_inference_admitted",
            "Inference requests running or waiting in the model's lane",
            labels=["model"],
        )
        for model in s.repository.all():
            version.add_metric([model.name], model.version)
            admitted.add_metric([model.name], s.admitted(model.name))
        yield version
        yield admitted
        yield GaugeMetricFamily(
            "appliance_agent_hub_reachable",
            "1 if the last sync reached the hub",
            value=1.0 if s.hub_reachable() else 0.0,
        )
        yield GaugeMetricFamily(
            "appliance_agent_outbox_depth", "Reports waiting for the hub", value=s.outbox.depth()
        )
        yield GaugeMetricFamily(
            "appliance_agent_outbox_dropped",
            "Reports dropped because the outbox was full",
            value=s.outbox.dropped(),
        )
        yield GaugeMetricFamily(
            "appliance_agent_outbox_refused",
            "Reports the hub refused, kept aside as dead letters (see /agent/status)",
            value=s.outbox.dead_letter_count(),
        )
        p_values = GaugeMetricFamily(
            "appliance_agent_drift_p_value",
            "Per-feature p-value of the last drift test",
            labels=["model", "version", "feature"],
        )
        drifted = GaugeMetricFamily(
            "appliance_agent_drift_detected",
            "1 if the last drift test found drift",
            labels=["model", "version"],
        )
        for (name, ver), (found, values) in s.drifts().items():
            drifted.add_metric([name, str(ver)], 1.0 if found else 0.0)
            for feature, p in enumerate(values):
                p_values.add_metric([name, str(ver), str(feature)], p)
        yield p_values
        yield drifted


_REQUESTS = (
    "appliance_agent_requests",
    "Inference requests by outcome (ok, rejected: bad input, error: the model failed)",
)
_LATENCY = (
    "appliance_agent_request_seconds",
    "Inference latency inside the agent (decode, run, encode)",
)
_BUCKET = "appliance_agent_request_seconds_bucket"
_SUM = "appliance_agent_request_seconds_sum"
_KEPT = (REQUESTS, _BUCKET, _SUM)
"""The samples a process shares and adds up (not ``_created``, nor ``_count``)."""


class _CountersCollector(Collector):
    """The request counters and latency histograms: this process's and its peers'."""

    def __init__(self, metrics: AgentMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            *_REQUESTS, labels=["model", "version", "variant", "outcome"]
        )
        latency = HistogramMetricFamily(*_LATENCY, labels=["model", "version", "variant"])
        buckets: dict[tuple[str, str, str], list[tuple[str, float]]] = {}
        sums: dict[tuple[str, str, str], float] = {}
        for (sample, model, version, variant, extra), value in sorted(
            self.metrics.samples().items()
        ):
            if sample == REQUESTS:
                requests.add_metric([model, version, variant, extra], value)
            elif sample == _BUCKET:
                buckets.setdefault((model, version, variant), []).append((extra, value))
            elif sample == _SUM:
                sums[model, version, variant] = value
        yield requests
        for labels, bounds in buckets.items():
            bounds.sort(key=lambda b: float(b[0]))
            latency.add_metric(list(labels), bounds, sums.get(labels, 0.0))
        yield latency


class AgentMetrics:
    def __init__(self, sources: StateSources, peers: Peers | None = None) -> None:
        self.peers = peers
        """The other processes of a ``--workers N`` agent, whose counts add to these."""
        own = CollectorRegistry()  # this process's live counters; shown summed with peers'
        self._requests = Counter(
            *_REQUESTS, ["model", "version", "variant", "outcome"], registry=own
        )
        self._latency = Histogram(
            *_LATENCY, ["model", "version", "variant"], buckets=LATENCY_BUCKETS, registry=own
        )
        self.registry = CollectorRegistry()
        self.registry.register(_CountersCollector(self))
        self.registry.register(_StateCollector(sources))
        self._children: dict[tuple[str, int, str, str], tuple[Any, Any]] = {}
        self._last: dict[tuple[str, int], float] = {}

    def observe(self, model: LoadedModel, seconds: float, outcome: str, variant: str = "") -> None:
        key = (model.name, model.version, variant, outcome)
        pair = self._children.get(key)
        if pair is None:
            labels = (model.name, str(model.version), variant)
            pair = (self._requests.labels(*labels, outcome), self._latency.labels(*labels))
            self._children[key] = pair
        pair[0].inc()
        if outcome == "ok":
            pair[1].observe(seconds)
            self._last[model.name, model.version] = time.time()

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def own_samples(self) -> dict[SampleKey, float]:
        """This process's cumulative request counts, latency buckets and sums, keyed by
        sample name and labels."""
        found: dict[SampleKey, float] = {}
        for family in (*self._requests.collect(), *self._latency.collect()):
            for sample in family.samples:
                if sample.name not in _KEPT:
                    continue
                labels = sample.labels
                key = (
                    sample.name,
                    labels.get("model", ""),
                    labels.get("version", ""),
                    labels.get("variant", ""),
                    labels.get("outcome", labels.get("le", "")),
                )
                found[key] = sample.value
        return found

    def own_last(self) -> list[tuple[str, int, float]]:
        return [(m, v, t) for (m, v), t in sorted(self._last.items())]

    def totals(self) -> Totals:
        """The agent's cumulative counts and last inferences: this process's and its
        peers' (their files read once)."""
        totals = Totals().add(self.own_samples().items(), self.own_last())
        return totals.add_shares(self.peers.others() if self.peers else ())

    def samples(self) -> dict[SampleKey, float]:
        """The agent's cumulative counts: this process's and its peers'."""
        return self.totals().samples


class ServingSummaries:
    """Latency and error summaries per model version and variant, since the last one.

    Read off the Prometheus counters at flush time (the request path pays nothing
    extra): differences of the cumulative values, with the p95 latency estimated
    from the histogram buckets. They go to the hub through the outbox.
    """

    def __init__(self, metrics: AgentMetrics) -> None:
        self.metrics = metrics
        self._last: dict[SampleKey, float] = {}
        self._since = time.time()

    def take(self) -> list[dict[str, Any]]:
        now, current = time.time(), self.metrics.samples()
        # never below 0: a peer's last second of counts can be lost when it crashes
        delta = {k: max(0.0, v - self._last.get(k, 0.0)) for k, v in current.items()}
        self._last, started, self._since = current, self._since, now
        summaries: dict[tuple[str, str, str], dict[str, Any]] = {}
        for (sample, model, version, variant, extra), value in delta.items():
            entry = summaries.setdefault(
                (model, version, variant),
                {"ok": 0.0, "error": 0.0, "rejected": 0.0, "buckets": {}, "latency_sum": 0.0},
            )
            if sample == "appliance_agent_requests_total":
                entry[extra] = entry.get(extra, 0.0) + value
            elif sample == "appliance_agent_request_seconds_bucket":
                entry["buckets"][extra] = value
            elif sample == "appliance_agent_request_seconds_sum":
                entry["latency_sum"] = value
        reports = []
        for (model, version, variant), entry in sorted(summaries.items()):
            count = int(entry["ok"] + entry["error"] + entry["rejected"])
            if count == 0:
                continue
            reports.append(
                {
                    "model": model,
                    "version": int(version),
                    "variant": variant,
                    "requests": count,
                    "errors": int(entry["error"]),
                    "rejected": int(entry["rejected"]),
                    "latency_mean_s": entry["latency_sum"] / entry["ok"] if entry["ok"] else None,
                    "latency_p95_s": _p95(entry["buckets"], entry["ok"]),
                    "started_at": started,
                    "ended_at": now,
                }
            )
        return reports

    def flush(self, outbox: Outbox) -> int:
        reports = self.take()
        for body in reports:
            outbox.put("serving", body, key=f"serving-{uuid.uuid4()}")
        return len(reports)


def _p95(buckets: dict[str, float], count: float) -> float | None:
    """The 95th percentile, interpolated inside its bucket as Prometheus'
    ``histogram_quantile`` does (None without requests)."""
    if count <= 0:
        return None
    rank = 0.95 * count
    lower, below = 0.0, 0.0
    for bound, cumulative in sorted((float(le), c) for le, c in buckets.items()):
        if cumulative >= rank:
            if bound == float("inf"):
                return lower
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, cumulative
    return None
