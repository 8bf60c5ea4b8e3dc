"""A list pane that also follows a history of the selected record, a page at a time.

A job's log lines and a drift series' windows are both lists the hub pages oldest
first, after a sequence number. The pane keeps the latest of them per record and,
on each refresh, asks only for what came after the last one it holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any, ClassVar, Generic, TypeVar

from textual import on, work
from textual.message import Message

from tui.records import appended, read_after
from tui.widgets.listing import ListPane, R

T = TypeVar("T")


class FollowPane(ListPane[R], Generic[R, T]):
    PAGE: ClassVar[int] = 100
    """The hub's page size for the history: a full page means there may be more."""
    KEEP: ClassVar[int] = 100
    """How much of each history the pane keeps (and shows)."""
    MAX_PAGES: ClassVar[int] = 20
    """Pages read per refresh: a long history arrives over a few refreshes."""

    class Followed(Message):
        def __init__(self, key: str, items: Sequence[Any]) -> None:
            super().__init__()
            self.key = key
            self.items = items

    # -- what subclasses say -----------------------------------------------------------

    def follow_key(self, record: R) -> str:
        """Which history a record has (records may share one)."""
        raise NotImplementedError

    def position(self, item: T) -> int:
        """An item's sequence number in its history."""
        raise NotImplementedError

    def page(self, record: R, after: int) -> Sequence[T]:
        """The history's items after ``after``, oldest first (runs on a worker thread)."""
        raise NotImplementedError

    def show_followed(self, record: R | None, items: Sequence[T] | None) -> None:
        """Show the selected record with its history (None: not read yet)."""
        raise NotImplementedError

    # -- the machinery -----------------------------------------------------------------

    @cached_property
    def histories(self) -> dict[str, list[T]]:
        """Follow key -> the latest items of that history, oldest first."""
        return {}

    def show(self, record: R | None) -> None:
        if record is None:
            self.show_followed(None, None)
            return
        key = self.follow_key(record)
        held = self.histories.get(key)
        self.show_followed(record, held)
        self.follow(record, key, self.position(held[-1]) if held else 0)

    @work(thread=True, exclusive=True, group="follow")
    def follow(self, record: R, key: str, after: int) -> None:
        items = self.call_hub(
            lambda: read_after(
                lambda cursor: self.page(record, cursor),
                after,
                self.position,
                full=self.PAGE,
                keep=self.KEEP,
                max_pages=self.MAX_PAGES,
            )
        )
        if items is not None:
            self.post_message(self.Followed(key, items))

    @on(Followed)
    def _followed(self, message: Followed) -> None:
        message.stop()
        held = self.histories.get(message.key, [])
        self.histories[message.key] = appended(held, message.items, self.position, self.KEEP)
        record = self.selected()
        if record is not None and self.follow_key(record) == message.key:
            self.show_followed(record, self.histories[message.key])
