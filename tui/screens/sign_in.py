"""Sign-in: a username and password checked by the hub; tokens stay in memory."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Center, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Static

from appliance.errors import ApplianceError
from tui.hub import Connector, HubApi, describe


class SignInScreen(Screen[None]):
    DEFAULT_CSS = """
    SignInScreen { align: center middle; }
    SignInScreen #sign-in {
        width: 60; max-width: 100%; height: auto;
        border: thick $primary; padding: 0 2; background: $surface;
    }
    SignInScreen .title { text-style: bold; width: 100%; content-align: center middle; }
    SignInScreen #hub-url { color: $text-muted; margin-bottom: 1; }
    SignInScreen Button { margin-top: 1; }
    SignInScreen #sign-in-message { margin-top: 1; height: auto; }
    SignInScreen #sign-in-message.error { color: $text-error; text-style: bold; }
    """

    class SignedIn(Message):
        """The hub accepted the password; ``hub`` acts as that user from now on."""

        def __init__(self, hub: HubApi, me: dict[str, Any]) -> None:
            super().__init__()
            self.hub = hub
            self.me = me

    class Failed(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, connector: Connector, hub_url: str, username: str = "") -> None:
        super().__init__()
        self.connector = connector
        self.hub_url = hub_url
        self.username = username

    def compose(self) -> ComposeResult:
        with Vertical(id="sign-in"):
            yield Label("Appliance operator console", classes="title")
            yield Label(f"hub {self.hub_url}", id="hub-url", markup=False)
            yield Input(self.username, placeholder="username", id="username")
            yield Input(placeholder="password", password=True, id="password")
            with Center():
                yield Button("Sign in", id="sign-in-button", variant="primary")
            yield Static("", id="sign-in-message", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#password" if self.username else "#username", Input).focus()

    @on(Input.Submitted, "#username")
    def _next(self) -> None:
        self.query_one("#password", Input).focus()

    @on(Input.Submitted, "#password")
    @on(Button.Pressed, "#sign-in-button")
    def _submit(self) -> None:
        username = self.query_one("#username", Input).value.strip()
        password = self.query_one("#password", Input).value
        if not username or not password:
            self._say("Enter a username and a password.", error=True)
            return
        self._say(f"signing in as {username}…", error=False)
        self.query_one("#sign-in-button", Button).disabled = True
        self.sign_in(username, password)

    @work(thread=True, exclusive=True)
    def sign_in(self, username: str, password: str) -> None:
        try:
            hub = self.connector(username, password)
            me = hub.whoami()
        except ApplianceError as exc:
            self.post_message(self.Failed(describe(exc)))
            return
        self.post_message(self.SignedIn(hub, me))

    def on_sign_in_screen_failed(self, message: Failed) -> None:
        self.query_one("#sign-in-button", Button).disabled = False
        password = self.query_one("#password", Input)
        password.value = ""
        password.focus()
        self._say(message.text, error=True)

    def _say(self, text: str, *, error: bool) -> None:
        message = self.query_one("#sign-in-message", Static)
        message.set_class(error, "error")
        message.update(text)
