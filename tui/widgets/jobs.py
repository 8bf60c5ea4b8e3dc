"""Training jobs: newest first, the selected one's status, metrics and log tail; cancel.

The log tail is kept per job and followed: each refresh asks only for the lines
after the last one held. Cancelling asks first and is offered only to roles that
hold ``training:submit``; a running job stops at its worker's next heartbeat.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.widgets import Log, Static

from appliance.wire.training import TERMINAL_STATES, JobInfo, LogLine
from tui.format import training as ft
from tui.messages import ActionDone, ActionFailed
from tui.widgets.follow import FollowPane
from tui.widgets.table import Cell


class JobsPane(FollowPane[JobInfo, LogLine]):
    DEFAULT_CSS = """
    JobsPane #job-log { height: 1fr; max-height: 15; padding: 0 1; overflow-x: hidden; }
    """
    NEEDS = "training:read"
    ACTION_NEEDS = {"cancel": "training:submit"}
    COLUMNS = ft.JOB_COLUMNS
    TABLE_ID = "jobs-table"
    LOADING = "loading training jobs…"
    PAGE = 1000
    KEEP = 15
    BINDINGS = [Binding("c", "cancel", "Cancel job")]

    def details(self) -> ComposeResult:
        yield Static("", id="job-summary", classes="list-details", markup=False)
        yield Log(id="job-log", max_lines=self.KEEP)

    def fetch(self) -> Sequence[JobInfo]:
        return self.hub.training_jobs()

    def key(self, record: JobInfo) -> str:
        return str(record.id)

    def cells(self, record: JobInfo) -> Sequence[Cell]:
        return ft.job_cells(record)

    def status(self) -> str:
        if not self.records:
            return "no training jobs yet: 'appliance train submit JOB.json' queues one"
        counts = {s: sum(1 for j in self.records if j.state == s) for s in ("running", "queued")}
        newest = " (the newest 100)" if len(self.records) >= 100 else ""
        cancel = " · c: cancel the selected job" if self.may("cancel") else ""
        return (
            f"{len(self.records)} jobs{newest} · {counts['running']} running · "
            f"{counts['queued']} queued{cancel}"
        )

    # -- the selected job and its log --------------------------------------------------

    def follow_key(self, record: JobInfo) -> str:
        return str(record.id)

    def position(self, item: LogLine) -> int:
        return item.seq

    def page(self, record: JobInfo, after: int) -> Sequence[LogLine]:
        return self.hub.training_logs(record.id, after=after)

    def show_followed(self, record: JobInfo | None, items: Sequence[LogLine] | None) -> None:
        summary = self.query_one("#job-summary", Static)
        log = self.query_one("#job-log", Log)
        log.clear()
        summary.display = log.display = record is not None
        if record is None:
            return
        summary.update(ft.job_summary(record))
        if items:
            log.write_lines(ft.log_lines(items))
        else:
            log.write_line("(reading the log…)" if items is None else "(no log lines yet)")

    # -- cancel ------------------------------------------------------------------------

    def action_cancel(self) -> None:
        job = self.selected()
        if job is None:
            return
        if job.state in TERMINAL_STATES:
            self.post_message(ActionFailed(f"training job {job.id} already ended ({job.state})"))
            return
        if job.cancel_requested:
            self.post_message(ActionDone(f"training job {job.id}: cancellation already asked"))
            return
        self.confirm(
            f"Cancel training job {job.id}?",
            ft.cancel_body(job),
            "Cancel job",
            lambda: self.act(lambda: self.hub.cancel_training(job.id), ft.cancelled),
        )

    def commands(self) -> Iterator[SystemCommand]:
        yield from self.command("Cancel training job", "The selected job", "cancel")
