"""The demo: hub, two agents and a training worker as real processes, the whole loop.

Steps: start the hub; enrol two agents (pinning the CA and the TUF root); load
the feature store (scans and diagnoses); start a training worker; train version
1 as a job on the worker (point-in-time training set, evaluation gate, candidate);
promote it to production; wait until both agents serve it; score the held-out
rows over HTTP; train version 2 (gated against version 1 on the same rows) and
promote it while traffic flows; check that the agents swapped with no failed
request; feed one agent shifted inputs until the hub raises a drift alert, which
queues the retraining job that makes version 3; roll version 3 out as a canary,
ring by ring, into production; run an A/B test of version 3 against version 2
with sticky customers until the hub gives a verdict.
"""

from __future__ import annotations

import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.table import Table

from appliance.cli.demo.clinic import held_out, job_spec, load_clinic
from appliance.cli.demo.load import LoadResult, LoadThread, infer_once, v2_body
from appliance.cli.demo.processes import (
    ServiceProcess,
    WaitTimeoutError,
    agent_process,
    hub_process,
    serving_version,
    stop_all,
    wait_for,
    worker_process,
)
from appliance.cli.demo.site import ROLES, Site, bootstrap_site
from appliance.cli.output import console
from appliance.client.hub import HubClient
from appliance.errors import ApplianceError, ConfigError
from appliance.wire.fleet import NewInferenceKey
from appliance.wire.registry import VersionInfo
from appliance.wire.training import JobInfo, JobSpec, ScheduleSpec

MODEL = "breast-cancer"
AGENTS = ("agent-dxb-1", "agent-dxb-2")
ZONE = "ae-dxb"
WAIT_S = 60.0
DEMO_DRIFT = {
    "APPLIANCE_DRIFT_WINDOW_ROWS": "200",
    "APPLIANCE_DRIFT_EVERY_REQUESTS": "100",
    "APPLIANCE_DRIFT_CHECK_S": "0.5",
    "APPLIANCE_SERVING_REPORT_S": "1",
}
"""Small, fast drift windows so the demo shows an alert in seconds (defaults: 1,000 rows)."""


@contextmanager
def step(title: str) -> Iterator[None]:
    started = time.monotonic()
    with console.status(f"{title}…"):
        yield
    console.print(f"[green]✓[/] {title} [dim]({time.monotonic() - started:.1f} s)[/]")


def _wait_serving(agent: ServiceProcess, version: str, plane: dict[str, Any]) -> None:
    wait_for(
        f"{agent.name} to serve v{version}",
        lambda: serving_version(agent.url, MODEL, **plane) == version,
        timeout=WAIT_S,
    )


def _fresh_dir(data_dir: Path | None) -> Path:
    if data_dir is None:
        return Path(tempfile.mkdtemp(prefix="appliance-demo-"))
    if data_dir.exists() and any(data_dir.iterdir()):
        raise ConfigError(
            f"demo data directory {data_dir} is not empty",
            hint="give an empty or new folder, or leave out --data-dir",
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    return data_dir


def _spec(seed: int, hidden: list[int]) -> JobSpec:
    # the demo's versions differ in architecture; allow 3 points below production's accuracy
    return job_spec(MODEL, seed=seed, hidden=hidden, max_regression=0.03)


def _finished(hub: HubClient, job_id: int) -> VersionInfo:
    """Wait for the job; the version it registered, or a failure naming the job's message."""
    job = hub.wait_training(job_id, timeout=WAIT_S * 2)
    if job.state != "succeeded" or job.result_version is None:
        raise WaitTimeoutError(f"training job {job_id} {job.state}: {job.message}")
    return hub.get_model(MODEL).versions[job.result_version - 1]


def _retrained_on_drift(hub: HubClient) -> JobInfo:
    return wait_for(
        "the hub to queue the retraining job",
        lambda: next(
            (j for j in hub.training_jobs(model=MODEL) if j.reason.startswith("drift:")), None
        ),
        timeout=WAIT_S,
    )


def _drift_until_alert(
    agent: ServiceProcess, hub: HubClient, features: np.ndarray, plane: dict[str, Any]
) -> dict[str, object]:
    """Send shifted rows until the hub has an open drift alert (or give up)."""
    shifted = features.copy()
    shifted[:, :5] += 1.5 * features[:, :5].std(axis=0)  # the first five features read high
    deadline = time.monotonic() + WAIT_S
    with httpx.Client(timeout=10.0, **plane) as client:
        while time.monotonic() < deadline:
            for i in range(0, 100):
                row = shifted[i % len(shifted) : i % len(shifted) + 1]
                infer_once(client, agent.url, MODEL, row, np.zeros(1, dtype=np.int64))
            time.sleep(0.7)
            alerts = hub.drift_alerts(open_only=True)
            if alerts:
                return alerts[0]
    raise WaitTimeoutError(f"no drift alert within {WAIT_S:.0f} s")


def _canary(
    approver: HubClient, version: int, agents: list[ServiceProcess], plane: dict[str, Any]
) -> dict[str, Any]:
    """Roll ``version`` out in two rings with a short soak; wait until it is in production."""
    rollout = approver.start_rollout(
        {
            "model": MODEL,
            "version": version,
            "zone": ZONE,
            "rings": [0.5, 1.0],
            "soak_s": 3,
            "max_p95_ratio": 3.0,  # a few hundred requests on a cold model: be lenient
        }
    )
    with httpx.Client(timeout=10.0, **plane) as client:  # some traffic for the gates to judge
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            for agent in agents:
                infer_once(
                    client,
                    agent.url,
                    MODEL,
                    np.zeros((1, 30), np.float32),
                    np.zeros(1, dtype=np.int64),
                )
            state = approver.rollout(rollout["id"])
            if state["state"] != "running":
                break
            time.sleep(0.2)
    if state["state"] != "completed":
        raise WaitTimeoutError(f"rollout ended {state['state']}: {state['steps'][-1]['note']}")
    for agent in agents:
        _wait_serving(agent, str(version), plane)
    return state


def _ab_test(
    engineer: HubClient,
    agents: list[ServiceProcess],
    control: int,
    candidate: int,
    features: np.ndarray,
    labels: np.ndarray,
    plane: dict[str, Any],
) -> dict[str, Any]:
    """Customers sticky to a variant on both agents; outcome = the prediction was right."""
    engineer.create_experiment(
        {
            "name": "demo-ab",
            "model": MODEL,
            "zone": ZONE,
            "variants": [
                {"name": "control", "version": control, "weight": 0.5},
                {"name": "candidate", "version": candidate, "weight": 0.5},
            ],
            "min_samples": 100,
        }
    )
    sent = 0
    with httpx.Client(timeout=10.0, **plane) as client:
        deadline = time.monotonic() + WAIT_S
        while sent < 300 and time.monotonic() < deadline:
            agent, row = agents[sent % len(agents)], sent % len(features)
            body = v2_body(features[row : row + 1])
            answer = client.post(
                f"{agent.url}/v2/models/{MODEL}/infer",
                json=body,
                headers={"x-subject-id": f"customer-{sent}"},
            ).json()
            if "parameters" not in answer:  # the agents have not loaded the variants yet
                time.sleep(0.2)
                continue
            output = answer["outputs"][0]
            predicted = int(np.asarray(output["data"]).reshape(output["shape"]).argmax())
            client.post(
                f"{agent.url}/v2/models/{MODEL}/feedback",
                json={"id": answer["id"], "outcome": float(predicted == labels[row])},
            )
            sent += 1

    def counted() -> dict[str, Any] | None:
        result = engineer.experiment("demo-ab")
        return result if sum(v["count"] for v in result["variants"]) >= sent else None

    result = wait_for("the A/B outcomes at the hub", counted, timeout=WAIT_S)
    engineer.stop_experiment("demo-ab")
    return result


def _promote(engineer: HubClient, approver: HubClient, version: int) -> None:
    """The engineer stages the version; an approver (not its author) puts it in production."""
    engineer.change_stage(MODEL, version, "staging")
    info = approver.change_stage(MODEL, version, "production")
    if info.stage != "production":
        raise WaitTimeoutError(f"v{version} is still {info.stage} after approval")


def _score(
    agent: ServiceProcess, features: np.ndarray, labels: np.ndarray, plane: dict[str, Any]
) -> LoadResult:
    result = LoadResult()
    with httpx.Client(timeout=10.0, **plane) as client:
        for i in range(len(features)):
            result.outcomes.append(
                infer_once(client, agent.url, MODEL, features[i : i + 1], labels[i : i + 1])
            )
    return result


@dataclass
class _Fleet:
    """The running site that the demo's steps share."""

    site: Site
    hub: ServiceProcess
    admin: HubClient
    engineer: HubClient
    """alice, who trains and stages."""
    approver: HubClient
    """omar, who approves what alice staged."""
    agents: list[ServiceProcess] = field(default_factory=list)
    inference_key: str = ""
    plane: dict[str, Any] = field(default_factory=dict)
    """How the clinic's apps call agents: HTTPS and their key."""

    def close(self) -> None:
        for client in (self.admin, self.engineer, self.approver):
            client.close()


@dataclass
class _Served:
    """The first two versions, and what the agents served of them."""

    v1: VersionInfo
    v2: VersionInfo
    scored: dict[str, LoadResult]
    swaps: dict[str, LoadResult]
    features: np.ndarray
    labels: np.ndarray


def run_demo(data_dir: Path | None, *, serve: bool = False) -> int:
    root = _fresh_dir(data_dir)
    console.print(f"[bold]Appliance demo[/] in {root}")
    processes: list[ServiceProcess] = []
    started = time.monotonic()
    # What a supervisor, 'timeout' or a closed terminal sends stops the demo as Ctrl-C does:
    # the services it started stop with it (and die with it if it is killed outright).
    handlers = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        fleet = _start_fleet(root, processes)
        _start_training(root, fleet, processes)
        served = _serve_two_versions(fleet)
        _drift_canary_and_ab(fleet, served)
        ok = _report(fleet, served, time.monotonic() - started)
        if serve and ok:
            _serve_forever(fleet.hub, fleet.agents, fleet.site, fleet.inference_key)
        return 0 if ok else 1
    except ApplianceError as exc:
        console.print(f"[bold red]✗ demo failed:[/] {exc}")
        for proc in processes:
            console.print(f"[dim]--- last lines of {proc.name} ({proc.log_path}) ---[/]")
            console.print(proc.log_tail(), highlight=False, markup=False)
        return 1
    finally:
        stop_all(reversed(processes))
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _started(processes: list[ServiceProcess], proc: ServiceProcess) -> ServiceProcess:
    """``proc`` started, and kept in ``processes`` so the demo stops it at the end."""
    processes.append(proc)
    proc.start()
    return proc


def _start_fleet(root: Path, processes: list[ServiceProcess]) -> _Fleet:
    """The site CA, the hub, its people, two enrolled agents and the clinic's key."""
    with step("site CA and hub certificate created; users bootstrapped"):
        site = bootstrap_site(root)
    with step("hub started (HTTPS from the site CA)"):
        hub_proc = hub_process(site.hub_dir, tls=site.tls)
        hub_proc.env["APPLIANCE_ROLLOUT_CHECK_S"] = "1"  # judge canary rings every second
        hub_proc.env["APPLIANCE_SITE_CA"] = str(site.root / "ca")  # signs agents' HTTPS
        _started(processes, hub_proc).wait_healthy()
    fleet = _Fleet(
        site,
        hub_proc,
        site.client(hub_proc.url, "admin"),
        site.client(hub_proc.url, "alice"),
        site.client(hub_proc.url, "omar"),
    )
    enrolled = f"{len(AGENTS)} agents enrolled with one-time tokens (zone {ZONE})"
    with step(f"{enrolled}, CA and TUF root pinned"):
        fleet.agents = [
            agent_process(
                name,
                root / name,
                hub_proc.url,
                site.trusted_root,
                enrol_token=fleet.admin.create_enrolment_token(ZONE)["token"],
                hub_ca=site.ca_file,
                env=DEMO_DRIFT,
            )
            for name in AGENTS
        ]
        for agent in fleet.agents:
            _started(processes, agent)
        for agent in fleet.agents:
            agent.wait_healthy()
    with step("admin issued the clinic's apps a key for the agents (checked offline)"):
        issued = fleet.admin.create_inference_key(
            NewInferenceKey(name="clinic-app", zone=ZONE, models=[MODEL], days=30)
        )
        fleet.inference_key = issued.key or ""
        fleet.plane = {
            "headers": {"authorization": f"Bearer {fleet.inference_key}"},
            "verify": fleet.agents[0].verify,
        }
    return fleet


def _start_training(root: Path, fleet: _Fleet, processes: list[ServiceProcess]) -> None:
    """The clinic's feature views, and a training worker to learn from them."""
    with step("alice defined feature views (scans, diagnoses) and ingested 569 patients"):
        load_clinic(fleet.engineer, ZONE)
    with step("training worker gpu01 started (a 'worker' account; this box: CPU)"):
        hub_url = fleet.hub.url
        session = fleet.site.session_file(hub_url, "gpu01", root / "gpu01.session.json")
        worker = worker_process(
            "gpu01", session, hub_url, root / "logs", zone=ZONE, hub_ca=fleet.site.ca_file
        )
        _started(processes, worker)


def _serve_two_versions(fleet: _Fleet) -> _Served:
    """v1 trained, approved and scored on every agent; v2 swapped in under live traffic."""
    engineer, approver, agents, plane = fleet.engineer, fleet.approver, fleet.agents, fleet.plane
    with step("gpu01 trained v1 from the feature store (job 1: point-in-time join, gate)"):
        v1 = _finished(engineer, engineer.submit_training(_spec(0, [32, 16])).id)
        features, labels = held_out(seed=0)
    with step(f"alice staged {MODEL} v{v1.version}; omar approved it; hub signed TUF metadata"):
        _promote(engineer, approver, v1.version)
    with step("both agents verified v1 via TUF, decrypted it with their own keys, tested it"):
        for agent in agents:
            _wait_serving(agent, "1", plane)
    scored: dict[str, LoadResult] = {}
    with step(f"scored the {len(features)} held-out rows on each agent over HTTP"):
        for agent in agents:
            scored[agent.name] = _score(agent, features, labels, plane)
    loads = [LoadThread(a.url, MODEL, features, labels, **plane) for a in agents]
    for load in loads:
        load.start()
    with step("gpu01 trained v2 while both agents keep serving; it passed the gate vs v1"):
        v2 = _finished(engineer, engineer.submit_training(_spec(0, [64, 32])).id)
        engineer.create_schedule(
            ScheduleSpec(name="retrain-on-drift", job=_spec(0, [48, 24]), on_drift=True)
        )
    with step(f"v{v2.version} staged and approved; agents swapped under live traffic"):
        _promote(engineer, approver, v2.version)
        for agent in agents:
            _wait_serving(agent, "2", plane)
        time.sleep(0.5)
    swaps = {agent.name: load.stop() for agent, load in zip(agents, loads, strict=True)}
    return _Served(v1, v2, scored, swaps, features, labels)


def _drift_canary_and_ab(fleet: _Fleet, served: _Served) -> None:
    """Drift on one agent retrains v3; v3 rolls out ring by ring, then meets v2 in an A/B."""
    engineer, approver, agents, plane = fleet.engineer, fleet.approver, fleet.agents, fleet.plane
    shifted = f"{agents[0].name} sees shifted inputs (a sensor reads high)"
    with step(f"{shifted}; only statistics leave the box; the hub raises a drift alert"):
        alert = _drift_until_alert(agents[0], fleet.admin, served.features, plane)
    console.print(
        f"  drift alert: {MODEL} v{alert['version']} on agent {alert['agent_id']}, "
        f"{alert['windows']} drifted windows in a row"
    )
    with step("the drift alert queued a retraining job; gpu01 trained v3 from it"):
        retrain = _retrained_on_drift(engineer)
        v3 = _finished(engineer, retrain.id)
    console.print(f"  job {retrain.id}: {retrain.reason}")
    with step("omar rolls v3 out as a canary: ring 1 (half the agents), then all"):
        engineer.change_stage(MODEL, v3.version, "staging")
        rollout = _canary(approver, v3.version, agents, plane)
    console.print(
        "  rollout: " + " → ".join(f"{s['action']} (ring {s['ring']})" for s in rollout["steps"])
    )
    v2 = served.v2
    with step(
        f"alice re-stages v{v2.version} and omar approves it for live traffic; alice runs "
        f"an A/B test, v{v3.version} against v{v2.version}, sticky by customer"
    ):
        engineer.change_stage(MODEL, v2.version, "staging")
        approver.approve_exposure(MODEL, v2.version)
        result = _ab_test(
            engineer, agents, v3.version, v2.version, served.features, served.labels, plane
        )
    rates = ", ".join(
        f"{v['name']} v{v['version']}: {v['mean']:.1%} correct of {v['count']}"
        for v in result["variants"]
    )
    console.print(f"  verdict: {result['verdict']} ({result['detail']}); {rates}")


def _report(fleet: _Fleet, served: _Served, elapsed: float) -> bool:
    """The summary tables, the fleet's health and the audit chain; whether all passed."""
    reported = fleet.admin.list_agents()
    audit = fleet.admin.verify_audit()
    fleet.close()
    names = [a.name for a in fleet.agents]
    ok = _summary(served.v1, served.v2, served.scored, served.swaps, names, elapsed)
    if any(a.health != "ok" for a in reported):
        console.print("[red]an agent reported trouble to the hub[/]")
        ok = False
    console.print(
        f"audit log: {'[green]verified[/]' if audit['ok'] else '[red]BROKEN[/]'}, "
        f"{audit['entries_checked']} hash-chained entries"
    )
    return ok and bool(audit["ok"])


def _summary(
    v1: VersionInfo,
    v2: VersionInfo,
    scored: dict[str, LoadResult],
    swaps: dict[str, LoadResult],
    agents: list[str],
    elapsed: float,
) -> bool:
    versions = Table("version", "hidden", "accuracy", "bundle", "runtimes", title="Model versions")
    for info in (v1, v2):
        versions.add_row(
            str(info.version),
            str(info.lineage["hyperparameters"]["hidden"]),
            f"{info.metrics['accuracy']:.4f}",
            info.bundle_sha256[:12],
            "+".join(info.runtimes),
        )
    console.print(versions)
    table = Table(
        "agent",
        "v1 acc",
        "p50",
        "p95",
        "p99",
        "requests",
        "in swap",
        "served",
        "failed",
        title="Agents (accuracy over HTTP, latency in ms)",
    )
    total_failures = 0
    total_requests = 0
    for name in agents:
        score, swap = scored[name], swaps[name]
        correct = [o.correct for o in score.outcomes if o.error is None]
        pct = score.latency_percentiles()
        failures = len(score.failures) + len(swap.failures)
        total_failures += failures
        total_requests += len(score.outcomes) + len(swap.outcomes)
        table.add_row(
            name,
            f"{sum(bool(c) for c in correct) / max(len(correct), 1):.4f}",
            f"{pct['p50']:.2f}",
            f"{pct['p95']:.2f}",
            f"{pct['p99']:.2f}",
            str(len(score.outcomes) + len(swap.outcomes)),
            str(len(swap.outcomes)),
            " → ".join(swap.versions()),
            str(failures),
        )
    console.print(table)
    swapped = all(swaps[n].versions()[-1:] == ["2"] for n in agents)
    ok = total_failures == 0 and swapped
    colour = "green" if ok else "red"
    console.print(
        f"[bold {colour}]{'PASS' if ok else 'FAIL'}[/]: {total_requests} requests served, "
        f"failures = {total_failures}, both agents on v2: {swapped}; {elapsed:.1f} s in all"
    )
    for name in agents:
        for failure in (scored[name].failures + swaps[name].failures)[:3]:
            console.print(f"[red]{name}: {failure.error}[/]")
    return ok


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _serve_forever(
    hub: ServiceProcess, agents: list[ServiceProcess], site: Site, inference_key: str
) -> None:
    console.print("\n[bold]Leaving the services running[/] (Ctrl-C stops them):")
    console.print(f"  hub    {hub.url}   (OpenAPI, after sign-in: {hub.url}/schema)")
    for agent in agents:
        console.print(
            f"  {agent.name}  {agent.url}   (KServe v2: {agent.url}/v2/models/{MODEL})"
            f"   gRPC {agent.grpc_address}"
        )
    console.print(f"  site CA {site.ca_file}")
    console.print(f"  inference key  {inference_key}", highlight=False)
    console.print("  demo users (generated passwords, this demo only):")
    for username, roles in ROLES.items():
        console.print(f"    {username:<7} {', '.join(roles):<12} {site.passwords[username]}")
    console.print(
        f"  sign in: appliance login --hub {hub.url} --hub-ca {site.ca_file} --username alice"
    )
    try:
        while all(p.process is not None and p.process.poll() is None for p in [hub, *agents]):
            time.sleep(1)
        console.print("[red]a service stopped; shutting down[/]")
    except KeyboardInterrupt:
        console.print("stopping…")
