"""Messages every pane posts about the hub itself; the main screen turns them into the banner."""

from __future__ import annotations

from textual.message import Message


class HubLost(Message):
    """A call could not reach the hub (connection refused, timeout, 5xx)."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class HubReached(Message):
    """A call got an answer from the hub (even a refusal): it is up."""


class ActionFailed(Message):
    """The hub refused what the operator asked (4xx); say why."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class ActionDone(Message):
    """Something the operator asked for happened; say what."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class Reveal(Message):
    """Show the record keyed ``key`` in ``tab`` (in its ``view``, for a tab with two)."""

    def __init__(self, tab: str, key: str, view: str = "") -> None:
        super().__init__()
        self.tab = tab
        self.key = key
        self.view = view
