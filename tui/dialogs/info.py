"""Shows a block of text (an agent's details, a one-time token) until dismissed."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class InfoDialog(ModalScreen[None]):
    DEFAULT_CSS = """
    InfoDialog { align: center middle; }
    InfoDialog > VerticalScroll {
        width: 76; max-width: 98%; height: auto; max-height: 90%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    InfoDialog .title { text-style: bold; margin-bottom: 1; }
    InfoDialog .secret { color: $text-warning; text-style: bold; }
    InfoDialog Horizontal { height: auto; align-horizontal: right; }
    """
    BINDINGS = [Binding("escape,enter", "close", "Close")]

    def __init__(self, title: str, body: str, *, secret: str | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.secret = secret

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Label(self.title_text, classes="title", markup=False)
            if self.secret is not None:
                yield Static(self.secret, id="secret", classes="secret", markup=False)
            yield Static(self.body, id="info-body", markup=False)
            with Horizontal():
                yield Button("Close", id="close", variant="primary")

    def show_body(self, body: str) -> None:
        """Replace the text shown (a no-op once the dialog is closed)."""
        self.body = body
        if self.is_attached:
            self.query_one("#info-body", Static).update(body)

    def on_button_pressed(self) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
