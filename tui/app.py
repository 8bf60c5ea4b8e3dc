"""The console's App: thin; it signs in, then shows the main screen."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import App, SystemCommand
from textual.screen import Screen

from tui.hub import Connector, HubApi
from tui.screens import MainScreen, SignInScreen


class ConsoleApp(App[None]):
    """``connector`` signs in; ``refresh_s`` is how often screens fetch again."""

    TITLE = "Appliance console"

    def __init__(
        self, connector: Connector, hub_url: str, *, username: str = "", refresh_s: float = 5.0
    ) -> None:
        super().__init__()
        self.connector = connector
        self.hub_url = hub_url
        self.username = username
        self.refresh_s = refresh_s
        self.hub: HubApi | None = None

    def on_mount(self) -> None:
        self.push_screen(SignInScreen(self.connector, self.hub_url, self.username))

    def on_sign_in_screen_signed_in(self, message: SignInScreen.SignedIn) -> None:
        self.hub = message.hub
        self.switch_screen(MainScreen(message.hub, message.me, refresh_s=self.refresh_s))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if isinstance(screen, MainScreen):
            yield from screen.commands()

    def on_unmount(self) -> None:
        if self.hub is not None:
            self.hub.close()
