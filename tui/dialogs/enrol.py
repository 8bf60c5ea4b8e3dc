"""Asks for the zone and group of a new agent's one-time enrolment token."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label


@dataclass(frozen=True)
class EnrolRequest:
    zone: str
    group: str
    ttl_hours: int


class EnrolDialog(ModalScreen[EnrolRequest | None]):
    DEFAULT_CSS = """
    EnrolDialog { align: center middle; }
    EnrolDialog > Vertical {
        width: 60; max-width: 95%; height: auto;
        border: thick $accent; background: $surface; padding: 0 2;
    }
    EnrolDialog .title { text-style: bold; margin-bottom: 1; }
    EnrolDialog Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    EnrolDialog Button { margin-left: 2; }
    EnrolDialog #enrol-error { color: $text-error; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, zone: str = "ae-dxb", group: str = "default") -> None:
        super().__init__()
        self.zone = zone
        self.group = group

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Enrol an agent: one-time token", classes="title")
            yield Input(self.zone, placeholder="zone", id="zone")
            yield Input(self.group, placeholder="group", id="group")
            yield Input("24", placeholder="valid for (hours)", id="ttl", type="integer")
            yield Label("", id="enrol-error")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Create token", id="create", variant="primary")

    def on_input_submitted(self) -> None:
        self._create()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "create":
            self._create()
        else:
            self.dismiss(None)

    def _create(self) -> None:
        zone = self.query_one("#zone", Input).value.strip()
        group = self.query_one("#group", Input).value.strip() or "default"
        ttl = self.query_one("#ttl", Input).value.strip() or "24"
        if not zone:
            self.query_one("#enrol-error", Label).update("A zone is required.")
            return
        self.dismiss(EnrolRequest(zone, group, max(1, int(ttl))))

    def action_cancel(self) -> None:
        self.dismiss(None)
