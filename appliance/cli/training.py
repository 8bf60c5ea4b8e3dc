"""``appliance train …`` (jobs and schedules) and ``appliance worker`` (a GPU server's loop)."""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
from rich.table import Table

from appliance.cli.connect import hub_flags, user_client
from appliance.cli.output import console, log_format_flag, setup_logging
from appliance.errors import ConfigError, InvalidInputError
from appliance.wire.training import TERMINAL_STATES, JobInfo, JobSpec, ScheduleSpec

FOLLOW_POLL_S = 1.0


def _spec_file(path: Path, kind: type[Any]) -> Any:
    try:
        return msgspec.json.decode(path.read_bytes(), type=kind)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidInputError(f"{path}: {exc}") from exc


def _print_job(job: JobInfo) -> None:
    console.print(
        f"job [bold]{job.id}[/] {job.model}: [cyan]{job.state}[/] {job.progress:.0%} {job.message}",
        highlight=False,
    )


def _follow(args: argparse.Namespace, job_id: int) -> JobInfo:
    """Print the job's log as it grows until it ends."""
    seen = 0
    with user_client(args) as hub:
        while True:
            for line in hub.training_logs(job_id, after=seen):
                console.print(f"[dim]{line.at[11:19]}[/] {line.line}", highlight=False)
                seen = line.seq
            job = hub.training_job(job_id)
            if job.state in TERMINAL_STATES:
                return job
            time.sleep(FOLLOW_POLL_S)


def _exit_code(job: JobInfo) -> int:
    return 0 if job.state == "succeeded" else 1


def train_submit(args: argparse.Namespace) -> int:
    spec = _spec_file(args.file, JobSpec)
    with user_client(args) as hub:
        job = hub.submit_training(spec)
    _print_job(job)
    if args.follow:
        job = _follow(args, job.id)
        _print_job(job)
        return _exit_code(job)
    return 0


def train_list(args: argparse.Namespace) -> int:
    with user_client(args) as hub:
        jobs = hub.training_jobs(state=args.state, model=args.model)
    table = Table("id", "model", "state", "progress", "worker", "version", "created (UTC)", "why")
    for job in jobs:
        table.add_row(
            str(job.id),
            job.model,
            job.state,
            f"{job.progress:.0%}",
            job.worker or "-",
            str(job.result_version or "-"),
            job.created_at[:19],
            job.reason,
        )
    console.print(table if jobs else "no training jobs yet; try 'appliance train submit JOB.json'")
    return 0


def train_show(args: argparse.Namespace) -> int:
    with user_client(args) as hub:
        job = hub.training_job(args.job)
        logs = hub.training_logs(args.job)
    if args.json:
        console.print_json(msgspec.json.encode(job).decode())
        return 0
    _print_job(job)
    for key in ("reason", "submitted_by", "worker", "attempts", "zone"):
        console.print(f"  {key}: {getattr(job, key)}", highlight=False)
    if job.metrics:
        console.print(
            "  metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(job.metrics.items()))
        )
    gpus = job.telemetry.get("gpus") or []
    for gpu in gpus:
        console.print(
            f"  GPU {gpu['index']} {gpu['name']}: {gpu['utilization_pct']:.0f}% busy, "
            f"{gpu['memory_used_mib']:.0f}/{gpu['memory_total_mib']:.0f} MiB, "
            f"{gpu['temperature_c']:.0f} °C, {gpu['power_w']:.0f} W",
            highlight=False,
        )
    if not gpus and job.telemetry.get("note"):
        console.print(f"  GPU: {job.telemetry['note']}")
    for line in logs[-args.tail :]:
        console.print(f"  [dim]{line.at[11:19]}[/] {line.line}", highlight=False)
    return 0


def train_logs(args: argparse.Namespace) -> int:
    job = _follow(args, args.job)
    _print_job(job)
    return _exit_code(job)


def train_cancel(args: argparse.Namespace) -> int:
    with user_client(args) as hub:
        _print_job(hub.cancel_training(args.job))
    return 0


def train_schedule(args: argparse.Namespace) -> int:
    job = _spec_file(args.file, JobSpec)
    spec = ScheduleSpec(name=args.name, job=job, cron=args.cron, on_drift=args.on_drift)
    with user_client(args) as hub:
        info = hub.create_schedule(spec)
    console.print(
        f"schedule [bold]{info.name}[/] retrains {info.model}: "
        f"cron {info.cron or '-'}, on drift {'yes' if info.on_drift else 'no'}; "
        f"next run {info.next_run_at or '-'}",
        highlight=False,
    )
    return 0


def _check_identity(given: str | None, account: str, what: str) -> None:
    """The hub knows a worker by its account; a flag or variable that says otherwise is a
    mistake in the set-up, stopped here rather than ignored."""
    if given and given != account:
        raise ConfigError(
            f"this worker's account says its {what} is {account!r}, not {given!r}",
            hint=f"drop --{what} (the account decides it) or sign in with the right account",
        )


def worker_run(args: argparse.Namespace) -> int:
    # lazy: the hub extra, absent on agent boxes
    from hub.worker.loop import Worker, WorkerSettings, whoami_once_reachable

    setup_logging(args.log_format)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    with user_client(args) as hub:
        # --once is a script's: an unreachable hub is its error, at once
        me = hub.whoami() if args.once else whoami_once_reachable(hub, stopping, args.poll_s)
        if me is None:
            return 0  # stopped while the hub was away
        name, zone = str(me["actor"]).split(":", 1)[-1], me.get("zone") or "the hub's zone"
        _check_identity(args.name or os.environ.get("APPLIANCE_WORKER_NAME"), name, "name")
        if me.get("zone"):
            _check_identity(args.zone or os.environ.get("APPLIANCE_ZONE"), zone, "zone")
        settings = WorkerSettings(
            name=name,
            zone=zone,
            heartbeat_s=args.heartbeat_s,
            poll_s=args.poll_s,
            device=args.device,
            processes=args.processes,
        )
        worker = Worker(hub, settings, stopping)
        if args.once:
            return 0 if worker.run_once() else 3
        worker.run_forever()
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hub_flag = hub_flags()
    train = sub.add_parser("train", help="training jobs on the site's GPU workers")
    tsub = train.add_subparsers(dest="train_command", required=True)

    submit = tsub.add_parser("submit", parents=[hub_flag], help="queue a training job")
    submit.add_argument("file", type=Path, help="job spec (JSON; see docs/training.md)")
    submit.add_argument("--follow", action="store_true", help="print its log until it ends")
    submit.set_defaults(func=train_submit)

    lst = tsub.add_parser("list", parents=[hub_flag], help="list training jobs, newest first")
    lst.add_argument("--state", choices=sorted({"queued", "running", *TERMINAL_STATES}))
    lst.add_argument("--model")
    lst.set_defaults(func=train_list)

    show = tsub.add_parser("show", parents=[hub_flag], help="one job: state, metrics, GPU, log")
    show.add_argument("job", type=int)
    show.add_argument("--tail", type=int, default=20, help="log lines to show (default 20)")
    show.add_argument("--json", action="store_true", help="the whole record as JSON")
    show.set_defaults(func=train_show)

    logs = tsub.add_parser("logs", parents=[hub_flag], help="follow a job's log until it ends")
    logs.add_argument("job", type=int)
    logs.set_defaults(func=train_logs)

    cancel = tsub.add_parser("cancel", parents=[hub_flag], help="cancel a queued or running job")
    cancel.add_argument("job", type=int)
    cancel.set_defaults(func=train_cancel)

    sched = tsub.add_parser(
        "schedule", parents=[hub_flag], help="retrain on a cron expression and/or on drift"
    )
    sched.add_argument("name")
    sched.add_argument("file", type=Path, help="job spec (JSON)")
    sched.add_argument("--cron", help="five-field crontab in UTC, e.g. '0 2 * * 1'")
    sched.add_argument(
        "--on-drift", action="store_true", help="also retrain when a drift alert opens"
    )
    sched.set_defaults(func=train_schedule)

    worker = sub.add_parser(
        "worker",
        parents=[hub_flag, log_format_flag()],
        help="work training jobs off the hub's queue (signed in as a 'worker' account)",
    )
    worker.add_argument(
        "--name", help="expected account name (the signed-in account decides; a check only)"
    )
    worker.add_argument(
        "--zone", help="expected residency zone (the account's zone decides; a check only)"
    )
    worker.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default auto)")
    worker.add_argument(
        "--processes",
        type=int,
        default=0,
        metavar="N",
        help="training processes for the built-in trainers, launched with torchrun (DDP); "
        "0: one per visible GPU (default), 1: in-process",
    )
    worker.add_argument("--heartbeat-s", type=float, default=10.0)
    worker.add_argument("--poll-s", type=float, default=5.0, help="wait between empty claims")
    worker.add_argument(
        "--once", action="store_true", help="work at most one job, then exit (3: none queued)"
    )
    worker.set_defaults(func=worker_run)
