"""Prometheus metrics of the hub (``GET /metrics``, text format), read at scrape time.

Aggregates only: how many agents are in which health, drift alerts open,
reports taken in, publications signed, models in production, training jobs by
state, and each training worker's GPUs (utilisation, memory, temperature, power)
as last reported. ``/metrics`` is
open like ``/health`` (no rows, no names of people); keep it on the site's
monitoring network.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from hub.fleet.records import AgentRecord
from hub.monitoring.records import AgentReportRecord, DriftAlertRecord
from hub.registry.records import ModelVersionRecord
from hub.training.records import TrainingJobRecord, TrainingWorkerRecord
from hub.updates.records import PublicationRecord


class _HubCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        with Session(self.engine) as session:
            agents = GaugeMetricFamily(
                "appliance_hub_agents",
                "Enrolled agents by zone and health",
                labels=["zone", "health"],
            )
            for zone, health, n in session.exec(
                select(AgentRecord.zone, AgentRecord.health, func.count())
                .where(col(AgentRecord.revoked_at).is_(None))
                .group_by(AgentRecord.zone, AgentRecord.health)
            ):
                agents.add_metric([zone, health], n)
            yield agents
            alerts = session.exec(
                select(func.count()).where(col(DriftAlertRecord.closed_at).is_(None))
            ).one()
            yield GaugeMetricFamily(
                "appliance_hub_drift_alerts_open", "Open drift alerts", value=alerts
            )
            reports = CounterMetricFamily(
                "appliance_hub_agent_reports", "Agent reports taken in, by kind", labels=["kind"]
            )
            for kind, n in session.exec(
                select(AgentReportRecord.kind, func.count()).group_by(AgentReportRecord.kind)
            ):
                reports.add_metric([kind], n)
            yield reports
            publications = session.exec(select(func.count()).select_from(PublicationRecord)).one()
            yield CounterMetricFamily(
                "appliance_hub_publications", "Signed update publications", value=publications
            )
            production = session.exec(
                select(func.count()).where(ModelVersionRecord.stage == "production")
            ).one()
            yield GaugeMetricFamily(
                "appliance_hub_models_in_production",
                "Model versions in production",
                value=production,
            )
            yield from training_metrics(session)


GPU_GAUGES = (
    ("utilization_pct", "appliance_worker_gpu_utilization_percent", "GPU busy, percent"),
    ("memory_used_mib", "appliance_worker_gpu_memory_used_mib", "GPU memory in use, MiB"),
    ("temperature_c", "appliance_worker_gpu_temperature_celsius", "GPU temperature, °C"),
    ("power_w", "appliance_worker_gpu_power_watts", "GPU power draw, W"),
)


def training_metrics(session: Session) -> Iterator[Metric]:
    """Jobs by state, and each worker's GPUs as its last heartbeat or claim read them."""
    jobs = GaugeMetricFamily(
        "appliance_hub_training_jobs", "Training jobs by state", labels=["state"]
    )
    for state, n in session.exec(
        select(TrainingJobRecord.state, func.count()).group_by(TrainingJobRecord.state)
    ):
        jobs.add_metric([state], n)
    yield jobs
    gauges = {
        key: GaugeMetricFamily(name, text, labels=["worker", "gpu", "model"])
        for key, name, text in GPU_GAUGES
    }
    for worker, telemetry in session.exec(
        select(TrainingWorkerRecord.name, TrainingWorkerRecord.telemetry)
    ):
        for gpu in telemetry.get("gpus", []):
            labels = [worker, str(gpu["index"]), gpu["name"]]
            for key, gauge in gauges.items():
                gauge.add_metric(labels, float(gpu[key]))
    yield from gauges.values()


class HubMetrics:
    """Read off the hub's records on every scrape."""

    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_HubCollector(engine))

    def render(self) -> bytes:
        return generate_latest(self.registry)
