"""A pane that lists one kind of record in a table and shows the selected one below.

Subclasses say how to fetch the records (on a worker thread), how a record reads
as a row, what the status line says and what to show for the selected record;
loading, keeping the cursor across refreshes and following the selection are here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

from textual import on, work
from textual.app import ComposeResult
from textual.message import Message
from textual.widgets import DataTable, Static

from tui.widgets.pane import HubPane
from tui.widgets.table import Cell, RecordTable

R = TypeVar("R")


class ListPane(HubPane, Generic[R]):
    DEFAULT_CSS = """
    ListPane > RecordTable { height: 1fr; }
    ListPane > .list-details { height: auto; border-top: solid $primary; padding: 0 1; }
    ListPane > .list-status { height: 1; color: $text-muted; padding: 0 1; }
    """
    COLUMNS: ClassVar[Sequence[str]] = ()
    TABLE_ID: ClassVar[str] = ""
    LOADING: ClassVar[str] = "loading…"

    records: Sequence[R] = ()
    """As the hub last listed them (replaced on each load, never changed in place)."""
    showing: str | None = None
    """The key of the record whose details are shown."""
    wanted: str | None = None
    """The key to put the cursor on once a load lists it (:meth:`reveal`)."""

    class Loaded(Message):
        def __init__(self, records: Sequence[Any]) -> None:
            super().__init__()
            self.records = records

    # -- what subclasses say -----------------------------------------------------------

    def fetch(self) -> Sequence[R]:
        """The records, newest or most telling first (runs on a worker thread)."""
        raise NotImplementedError

    def key(self, record: R) -> str:
        raise NotImplementedError

    def cells(self, record: R) -> Sequence[Cell]:
        raise NotImplementedError

    def status(self) -> str:
        """The line under everything: counts, and what to do when there is nothing."""
        raise NotImplementedError

    def details(self) -> ComposeResult:
        """Widgets between the table and the status line."""
        yield from ()

    def show(self, record: R | None) -> None:
        """Show the selected record (None: nothing selected) in the details."""

    # -- the machinery -----------------------------------------------------------------

    @property
    def table(self) -> RecordTable:
        return self.query_one(f"#{self.TABLE_ID}", RecordTable)

    def compose(self) -> ComposeResult:
        yield RecordTable(self.COLUMNS, id=self.TABLE_ID)
        yield from self.details()
        yield Static(self.LOADING, classes="list-status", markup=False)

    def on_mount(self) -> None:
        self.refresh_data()

    def refresh_data(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="list-load")
    def load(self) -> None:
        records = self.call_hub(self.fetch)
        if records is not None:
            self.post_message(self.Loaded(records))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        message.stop()
        self.records = list(message.records)
        self.table.refill((self.key(r), self.cells(r)) for r in self.records)
        if self.wanted is not None and self.table.select(self.wanted):
            self.wanted = None
        self.say(self.status())
        self.showing = self.table.selected
        self.show(self.selected())

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if self.table.selected != self.showing:
            self.showing = self.table.selected
            self.show(self.selected())

    def reveal(self, key: str, view: str = "") -> None:
        self.wanted = key
        self.refresh_data()

    def selected(self) -> R | None:
        key = self.table.selected
        return next((r for r in self.records if self.key(r) == key), None)

    def say(self, text: str) -> None:
        self.query_one(".list-status", Static).update(text)
