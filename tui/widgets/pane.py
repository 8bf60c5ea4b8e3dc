"""The base of every pane: hub calls on worker threads that report back with messages."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar, TypeVar

from textual import work
from textual.app import SystemCommand
from textual.containers import Vertical
from textual.widgets import DataTable

from appliance.errors import ApplianceError, HubUnavailableError
from tui.dialogs import ConfirmDialog
from tui.hub import HubApi, describe
from tui.messages import ActionDone, ActionFailed, HubLost, HubReached

T = TypeVar("T")


class HubPane(Vertical):
    """A pane over one area of the API; the screen hands it the signed-in hub."""

    NEEDS = ""
    """The permission (docs/security.md) without which the screen shows no such pane."""
    ACTION_NEEDS: ClassVar[dict[str, str]] = {}
    """Action name -> the permission it needs; without it the key is neither shown nor run."""

    def __init__(
        self, hub: HubApi, *, id: str | None = None, allowed: frozenset[str] = frozenset()
    ) -> None:
        super().__init__(id=id)
        self.hub = hub
        self.allowed = allowed
        """The signed-in user's permissions (what ``whoami`` said)."""

    def may(self, action: str) -> bool:
        """Whether the signed-in roles hold what ``action`` needs."""
        needed = self.ACTION_NEEDS.get(action)
        return needed is None or needed in self.allowed

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.may(action)

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

    def reveal(self, key: str, view: str = "") -> None:
        """Put the cursor on the record keyed ``key`` once it is listed (see :class:`Reveal`)."""

    @work(thread=True, group="act")
    def act(
        self,
        call: Callable[[], Any],
        done: Callable[[Any], str],
        then: Callable[[Any], object] | None = None,
    ) -> None:
        """Do what the operator asked (``call``), say what ``done`` makes of the answer, refresh.

        ``then(answer)``, if given, runs afterwards on the app's thread.
        """
        answer = self.call_hub(call)
        if answer is not None:
            self.post_message(ActionDone(done(answer)))
            self.app.call_from_thread(self.refresh_data)
            if then is not None:
                self.app.call_from_thread(then, answer)

    def confirm(self, title: str, body: str, confirm: str, then: Callable[[], object]) -> None:
        """Ask first; ``then()`` only on an explicit yes."""

        def answered(yes: bool | None) -> None:
            if yes:
                then()

        self.app.push_screen(ConfirmDialog(title, body, confirm=confirm), answered)

    def focus_table(self) -> None:
        """Put the keyboard on this pane's main table (when the tab is shown)."""
        for table in self.query(DataTable).results(DataTable):
            table.focus()
            return

    def commands(self) -> Iterator[SystemCommand]:
        """This pane's command palette entries (only those the roles allow)."""
        yield from ()

    def command(self, title: str, help: str, action: str) -> Iterator[SystemCommand]:
        """One palette entry running ``action_<action>``, if the roles allow it."""
        if self.may(action):
            yield SystemCommand(title, help, getattr(self, f"action_{action}"))
