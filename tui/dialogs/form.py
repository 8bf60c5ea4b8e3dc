"""A small form in a modal: labelled one-line fields, a hint, an error line, two buttons.

Subclasses say which fields (:class:`Field`) and how their text becomes the answer
(:meth:`FormDialog.build`); a :class:`ValueError` from ``build`` is shown on the error
line and the form stays open. Enter in a field or the submit button submits; Escape or
Cancel answer None. The parse helpers below say what was wrong in one line.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

T = TypeVar("T")


@dataclass(frozen=True)
class Field:
    """One line of the form: an input (or a choice, when ``choices`` are given)."""

    id: str
    label: str
    value: str = ""
    placeholder: str = ""
    type: Literal["text", "integer", "number"] = "text"
    choices: Sequence[str] = ()


class FormDialog(ModalScreen[T | None], Generic[T]):
    DEFAULT_CSS = """
    FormDialog { align: center middle; }
    FormDialog > Vertical {
        width: 68; max-width: 98%; height: auto; max-height: 100%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    FormDialog .title { text-style: bold; margin-bottom: 1; }
    FormDialog .form-row { height: 1; margin-bottom: 1; }
    FormDialog .form-label { width: 16; color: $text-muted; }
    FormDialog .form-row > Input, FormDialog .form-row > Select { width: 1fr; }
    FormDialog .hint { color: $text-muted; }
    FormDialog #form-error { color: $text-error; text-style: bold; }
    FormDialog .buttons { height: auto; align-horizontal: right; }
    FormDialog Button { margin-left: 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, fields: Sequence[Field], *, submit: str, hint: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.fields = list(fields)
        self.submit_label = submit
        self.hint = hint

    def build(self, values: dict[str, str]) -> T:
        """The answer from each field's text (stripped); ValueError says what is wrong."""
        raise NotImplementedError

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title", markup=False)
            for field in self.fields:
                with Horizontal(classes="form-row"):
                    yield Label(field.label, classes="form-label", markup=False)
                    yield _widget(field)
            if self.hint:
                yield Static(self.hint, classes="hint", markup=False)
            yield Label("", id="form-error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self.submit_label, id="submit", variant="primary")

    def values(self) -> dict[str, str]:
        found = {}
        for field in self.fields:
            if field.choices:
                found[field.id] = str(self.query_one(f"#{field.id}", Select).value)
            else:
                found[field.id] = self.query_one(f"#{field.id}", Input).value.strip()
        return found

    def on_input_submitted(self) -> None:
        self.submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "submit":
            self.submit()
        else:
            self.dismiss(None)

    def submit(self) -> None:
        try:
            answer = self.build(self.values())
        except ValueError as exc:
            self.query_one("#form-error", Label).update(str(exc))
            return
        self.dismiss(answer)

    def action_cancel(self) -> None:
        self.dismiss(None)


def _widget(field: Field) -> Input | Select[str]:
    if field.choices:
        return Select(
            [(choice, choice) for choice in field.choices],
            value=field.value or field.choices[0],
            allow_blank=False,
            compact=True,
            id=field.id,
        )
    return Input(
        field.value,
        placeholder=field.placeholder,
        type=field.type,
        compact=True,
        id=field.id,
    )


# -- parsing what was typed ------------------------------------------------------------


def required(value: str, what: str) -> str:
    if not value:
        raise ValueError(f"{what} is required.")
    return value


def whole(value: str, what: str, *, least: int = 0, default: int) -> int:
    """A whole number of at least ``least``; ``default`` when left empty."""
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{what}: a whole number, not {value!r}.") from None
    if number < least:
        raise ValueError(f"{what}: at least {least}.")
    return number


def optional_whole(value: str, what: str, *, least: int = 0) -> int | None:
    """As :func:`whole`, None when left empty."""
    return whole(value, what, least=least, default=0) if value else None


def names(value: str) -> list[str]:
    """``a, b,,c`` -> ``["a", "b", "c"]``."""
    return [name.strip() for name in value.split(",") if name.strip()]


def percentages(value: str, what: str) -> list[float]:
    """``5,25,100`` -> ``[0.05, 0.25, 1.0]``: increasing shares, the last 100%."""
    wrong = f"{what}: increasing percentages ending at 100, like 5,25,100."
    try:
        shares = [float(part.strip().rstrip("%")) for part in value.split(",") if part.strip()]
    except ValueError:
        raise ValueError(wrong) from None
    if (
        not shares
        or shares[-1] != 100
        or any(not 0 < s <= 100 for s in shares)
        or any(b <= a for a, b in itertools.pairwise(shares))
    ):
        raise ValueError(wrong)
    return [s / 100 for s in shares]
