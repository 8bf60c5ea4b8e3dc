"""Prometheus metrics of an agent (``GET /metrics``, text format).

Counters and latency histograms are updated on the request path through
per-(model, version, variant) children cached on first use; everything else
(installed versions, hub reachability, outbox depth, drift p-values) is read
when Prometheus scrapes, so it costs requests nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.drift.monitor import DriftMonitor
from agent.outbox import Outbox
from agent.repository import LoadedModel, ModelRepository

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class StateSources:
    repository: ModelRepository
    outbox: Outbox
    drift: DriftMonitor
    hub_reachable: Callable[[], bool]


class _StateCollector(Collector):
    def __init__(self, sources: StateSources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        s = self.sources
        version = GaugeMetricFamily(
            "appliance_agent_model_version", "Model version being served", labels=["model"]
        )
        for model in s.repository.all():
            version.add_metric([model.name], model.version)
        yield version
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
        for (name, ver), result in s.drift.latest().items():
            drifted.add_metric([name, str(ver)], 1.0 if result.drifted else 0.0)
            for feature, p in enumerate(result.p_values):
                p_values.add_metric([name, str(ver), str(feature)], p)
        yield p_values
        yield drifted


class AgentMetrics:
    def __init__(self, sources: StateSources) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "appliance_agent_requests",
            "Inference requests by outcome (ok, rejected: bad input, error: the model failed)",
            ["model", "version", "variant", "outcome"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "appliance_agent_request_seconds",
            "Inference latency inside the agent (decode, run, encode)",
            ["model", "version", "variant"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StateCollector(sources))
        self._children: dict[tuple[str, int, str, str], tuple[Any, Any]] = {}

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

    def render(self) -> bytes:
        return generate_latest(self.registry)
