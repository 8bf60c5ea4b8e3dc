"""The base of every pane: hub calls on worker threads that report back with messages."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from textual.containers import Vertical

from appliance.errors import ApplianceError, HubUnavailableError
from tui.hub import HubApi, describe
from tui.messages import ActionFailed, HubLost, HubReached

T = TypeVar("T")


class HubPane(Vertical):
    """A pane over one area of the API; the screen hands it the signed-in hub."""

    NEEDS = ""
    """The permission (docs/security.md) without which the screen shows no such pane."""

    def __init__(self, hub: HubApi, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.hub = hub

    def call_hub(self, call: Callable[[], T]) -> T | None:
        """Run ``call`` (on a worker thread); report the hub's state; None if it failed.

        Never touches a widget: everything it learns goes out as a message.
        """
        try:
            value = call()
        except HubUnavailableError as exc:
            self.post_message(HubLost(describe(exc)))
            return None
        except ApplianceError as exc:
            self.post_message(HubReached())
            self.post_message(ActionFailed(describe(exc)))
            return None
        self.post_message(HubReached())
        return value

    def refresh_data(self) -> None:
        """Fetch this pane's data again (in a worker); the screen calls it on a timer."""
