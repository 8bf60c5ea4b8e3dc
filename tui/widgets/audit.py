"""Audit: the hash-chained log, filtered by actor and action, a page at a time; verify it.

Paging follows the API: a page is the entries after a seq, oldest first; the
pane remembers where each page it has shown started, so it can go back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from tui.format import common as fmt
from tui.hub import HubApi
from tui.widgets.pane import HubPane

COLUMNS = ("seq", "at (UTC)", "actor", "action", "outcome", "target", "detail")
OUTCOME_STYLE = {"ok": "green", "allowed": "green", "refused": "yellow", "error": "bold red"}


class AuditPane(HubPane):
    DEFAULT_CSS = """
    AuditPane #audit-filters { height: auto; }
    AuditPane #audit-filters Input { width: 1fr; margin: 0 1; }
    AuditPane DataTable { height: 1fr; }
    AuditPane #audit-status { height: 1; color: $text-muted; padding: 0 1; }
    AuditPane #audit-verify { height: auto; padding: 0 1; }
    AuditPane #audit-verify.ok { color: $text-success; text-style: bold; }
    AuditPane #audit-verify.bad { color: $text-error; text-style: bold; }
    """
    NEEDS = "audit:read"
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter"),
        Binding("n", "next_page", "Next page"),
        Binding("b", "previous_page", "Prev page"),
        Binding("v", "verify", "Verify chain"),
    ]

    class PageLoaded(Message):
        def __init__(self, after: int, entries: list[dict[str, Any]]) -> None:
            super().__init__()
            self.after = after
            self.entries = entries

    class Verified(Message):
        def __init__(self, report: dict[str, Any]) -> None:
            super().__init__()
            self.report = report

    def __init__(
        self,
        hub: HubApi,
        *,
        id: str | None = None,
        allowed: frozenset[str] = frozenset(),
        page_size: int = 50,
    ) -> None:
        super().__init__(hub, id=id, allowed=allowed)
        self.page_size = page_size
        self.starts: list[int] = [0]
        """Where each page shown so far began (the ``after`` seq); the last is this page."""
        self.entries: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        with Horizontal(id="audit-filters"):
            yield Input(placeholder="actor, e.g. user:alice", id="audit-actor", compact=True)
            yield Input(placeholder="action, e.g. model.approve", id="audit-action", compact=True)
        yield DataTable(id="audit-table", cursor_type="row", zebra_stripes=True)
        yield Static("loading the audit log…", id="audit-status", markup=False)
        yield Static("", id="audit-verify", markup=False)

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.refresh_data()

    # -- data ------------------------------------------------------------------------

    def refresh_data(self) -> None:
        actor = self.query_one("#audit-actor", Input).value.strip() or None
        action = self.query_one("#audit-action", Input).value.strip() or None
        self.load_page(self.starts[-1], actor, action)

    @work(thread=True, exclusive=True, group="audit-load")
    def load_page(self, after: int, actor: str | None, action: str | None) -> None:
        entries = self.call_hub(
            lambda: self.hub.list_audit(
                after=after, limit=self.page_size, actor=actor, action=action
            )
        )
        if entries is not None:
            self.post_message(self.PageLoaded(after, entries))

    def on_audit_pane_page_loaded(self, message: PageLoaded) -> None:
        if message.after != self.starts[-1]:
            return  # an answer for a page the operator has already left
        self.entries = message.entries
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for entry in self.entries:
            outcome = str(entry.get("outcome", ""))
            table.add_row(
                str(entry.get("seq")),
                fmt.moment(str(entry.get("at", ""))),
                Text(str(entry.get("actor", ""))),
                Text(str(entry.get("action", ""))),
                fmt.styled(outcome, OUTCOME_STYLE),
                Text(str(entry.get("target", ""))),
                Text(fmt.audit_detail(entry)),
            )
        if self.entries:
            table.move_cursor(row=min(row, len(self.entries) - 1))
        page = len(self.starts)
        if self.entries:
            span = f"seq {self.entries[0].get('seq')} to {self.entries[-1].get('seq')}"
        else:
            span = "no entries"
        more = " · n: next page" if len(self.entries) == self.page_size else ""
        back = " · b: previous page" if page > 1 else ""
        self.query_one("#audit-status", Static).update(f"page {page} · {span}{more}{back}")

    @on(Input.Submitted, "#audit-filters Input")
    def _filter(self) -> None:
        self.starts = [0]
        self.refresh_data()
        self.query_one(DataTable).focus()

    # -- actions ---------------------------------------------------------------------

    def action_focus_filter(self) -> None:
        self.query_one("#audit-actor", Input).focus()

    def action_next_page(self) -> None:
        if len(self.entries) < self.page_size:
            return
        self.starts.append(int(self.entries[-1]["seq"]))
        self.refresh_data()

    def action_previous_page(self) -> None:
        if len(self.starts) > 1:
            self.starts.pop()
            self.refresh_data()

    def action_verify(self) -> None:
        result = self.query_one("#audit-verify", Static)
        result.set_classes("")
        result.update("verifying the whole chain and its signed checkpoints…")
        self.verify()

    @work(thread=True, exclusive=True, group="audit-verify")
    def verify(self) -> None:
        report = self.call_hub(self.hub.verify_audit)
        if report is not None:
            self.post_message(self.Verified(report))

    def on_audit_pane_verified(self, message: Verified) -> None:
        ok, line = fmt.verify_summary(message.report)
        result = self.query_one("#audit-verify", Static)
        result.set_classes("ok" if ok else "bad")
        result.update(line)

    def commands(self) -> Iterator[SystemCommand]:
        yield from self.command("Verify audit log", "Check the chain", "verify")
