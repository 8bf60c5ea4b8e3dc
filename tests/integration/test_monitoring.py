"""Drift, the outbox and metrics between real agent and hub processes (and a real Prometheus)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from typing import Any

import httpx
import numpy as np
import pytest

from agent.outbox import Outbox
from appliance.cli.demo.processes import free_port
from tests.harness.site import (
    MODEL,
    agent_status,
    infer_rows,
    publish,
    serving_version,
    wait_until,
)

pytestmark = pytest.mark.integration

FAST_DRIFT = {
    "APPLIANCE_DRIFT_WINDOW_ROWS": "200",
    "APPLIANCE_DRIFT_EVERY_REQUESTS": "100",
    "APPLIANCE_DRIFT_CHECK_S": "0.5",
    "APPLIANCE_SERVING_REPORT_S": "0.5",
}


HEAVY = {"alibi_detect", "torch", "transformers", "numba", "sklearn"}
"""What the drift tests must not bring into an agent (issue 20; 4 s of CPU each, issue 16)."""


def imported_packages(log: str) -> set[str]:
    """Top-level packages a process started with ``PYTHONPROFILEIMPORTTIME=1`` imported,
    read off its log (every import, lazy ones too, as it happens)."""
    return {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in log.splitlines()
        if line.startswith("import time:")
    }


def metric(url: str, name: str, labels: str = "") -> float | None:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$", text, re.M)
    return float(match.group(1)) if match else None


def test_a_drifting_agent_raises_an_alert_on_the_hub(
    hub, admin, engineer, approver, start_test_agent
):
    agent = start_test_agent("drift-1", env={**FAST_DRIFT, "PYTHONPROFILEIMPORTTIME": "1"})
    version = publish(engineer, approver).version
    wait_until("the model", lambda: serving_version(agent) == str(version))
    wait_until(
        "the drift watch", lambda: agent_status(agent.url)["drift"].get(f"{MODEL}/{version}")
    )
    rng = np.random.default_rng(0)
    as_trained = rng.standard_normal((200, 4)).astype(np.float32)
    assert set(infer_rows(agent.url, as_trained)) == {200}
    alerts: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while not alerts and time.monotonic() < deadline:  # then the inputs move, and stay moved
        moved = (rng.standard_normal((100, 4)) + 3).astype(np.float32)
        assert set(infer_rows(agent.url, moved)) == {200}
        time.sleep(1.0)
        alerts = admin.drift_alerts(open_only=True)
    assert alerts, "no drift alert within 60 s"
    assert (alerts[0]["model"], alerts[0]["version"]) == (MODEL, version)
    history = admin.drift_reports(model=MODEL)
    assert history[-1]["drifted"] and len(history[-1]["p_values"]) == 4
    assert (
        metric(
            agent.url, "appliance_agent_drift_detected", f'{{model="{MODEL}",version="{version}"}}'
        )
        == 1.0
    )
    assert metric(hub.url, "appliance_hub_drift_alerts_open") >= 1.0
    served = wait_until(
        "serving summaries",
        lambda: sum(r["summary"]["requests"] for r in admin.serving_reports()) >= 50 or None,
    )
    assert served
    summary = admin.serving_reports()[-1]["summary"]
    assert summary["model"] == MODEL and summary["latency_p95_s"] is not None
    imported = imported_packages(agent.log_path.read_text(errors="replace"))
    assert "scipy" in imported and "onnxruntime" in imported  # the drift tests ran here …
    assert not imported & HEAVY  # … on scipy.stats, the default backend


def test_reports_cross_a_hub_outage_and_agent_restarts_exactly_once(
    hub, engineer, approver, start_test_agent, workdir
):
    agent = start_test_agent("outbox-1")
    publish(engineer, approver)
    wait_until("the model", lambda: serving_version(agent) is not None)
    before = metric(hub.url, "appliance_hub_agent_reports_total", '{kind="serving"}') or 0.0
    hub.stop()
    agent.stop()
    box = Outbox(workdir / "outbox-1")  # 40 reports queued while the hub is away
    for i in range(40):
        body = {"model": MODEL, "version": 1, "requests": 1, "started_at": float(i)}
        box.put("serving", body, key=f"outage-{i}")
    box.close()
    agent.start()
    agent.wait_healthy()
    wait_until(
        "the agent to notice", lambda: metric(agent.url, "appliance_agent_hub_reachable") == 0
    )
    assert metric(agent.url, "appliance_agent_outbox_depth") == 40
    agent.kill()  # a power cut in the middle of the outage
    agent.start()
    agent.wait_healthy()
    hub.start()
    hub.wait_healthy()
    wait_until("delivery", lambda: metric(agent.url, "appliance_agent_outbox_depth") == 0, 60)
    after = metric(hub.url, "appliance_hub_agent_reports_total", '{kind="serving"}')
    assert after == before + 40


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian package prometheus missing")
def test_a_real_prometheus_scrapes_the_agent_and_the_hub(
    hub, engineer, approver, start_test_agent, tmp_path
):
    agent = start_test_agent("scraped-1")
    version = publish(engineer, approver).version
    wait_until("the model", lambda: serving_version(agent) == str(version))
    assert set(infer_rows(agent.url, np.zeros((20, 4), np.float32))) == {200}
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: agent\n    static_configs: [{{targets: ['{agent.url[7:]}']}}]\n"
        f"  - job_name: hub\n    static_configs: [{{targets: ['{hub.url[7:]}']}}]\n"
    )
    server = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def query(expr: str) -> list[dict[str, Any]]:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/api/v1/query", params={"query": expr}, timeout=5
                )
                answer = response.json() if response.status_code == 200 else {}
            except (httpx.HTTPError, ValueError):
                return []  # not listening yet, or still starting ("Service Unavailable")
            if answer.get("status") != "success":  # a non-200 answer while it starts, too
                return []
            result: list[dict[str, Any]] = answer["data"]["result"]
            return result

        served = wait_until(
            "Prometheus to scrape the agent",
            lambda: query(f'appliance_agent_model_version{{model="{MODEL}"}}'),
            60,
        )
        assert float(served[0]["value"][1]) == version  # type: ignore[index]
        requests = query(f'sum(appliance_agent_requests_total{{model="{MODEL}",outcome="ok"}})')
        assert float(requests[0]["value"][1]) >= 2  # type: ignore[index]
        assert wait_until("the hub", lambda: query("appliance_hub_models_in_production"), 30)
    finally:
        server.terminate()
        server.wait(10)
