"""Two panes in one tab, one shown at a time (80x24 has no room for both); a key switches.

Subclasses name their views and bind one key twice, once per view it leads to:
``Binding("w", "view('workers')", "Workers")`` and ``Binding("w", "view('jobs')",
"Jobs")``; only the binding to the view not shown is live, so the footer always
names where the key goes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult, SystemCommand
from textual.widgets import ContentSwitcher, Static

from tui.widgets.pane import HubPane


class SwitchPane(HubPane):
    DEFAULT_CSS = """
    SwitchPane > .views-heading { height: 1; padding: 0 1; background: $boost; }
    SwitchPane > ContentSwitcher { height: 1fr; }
    SwitchPane > ContentSwitcher > HubPane { height: 1fr; }
    """
    VIEWS: ClassVar[dict[str, tuple[str, type[HubPane]]]] = {}
    """View name -> (title, pane class); the first is shown first."""
    KEY: ClassVar[str] = ""
    """The key that switches (bound by the subclass, see the module docstring)."""

    def compose(self) -> ComposeResult:
        yield Static(classes="views-heading")
        with ContentSwitcher(initial=f"{next(iter(self.VIEWS))}-pane"):
            for name, (_, pane) in self.VIEWS.items():
                yield pane(self.hub, id=f"{name}-pane", allowed=self.allowed)

    def on_mount(self) -> None:
        self._heading()

    @property
    def current(self) -> str:
        shown = self.query_one(ContentSwitcher).current or ""
        return shown.removesuffix("-pane")

    def view_pane(self, name: str) -> HubPane:
        return self.query_one(f"#{name}-pane", HubPane)

    def _heading(self) -> None:
        heading = Text()
        for name, (title, _) in self.VIEWS.items():
            shown = name == self.current
            heading.append(f" {title} ", style="reverse bold" if shown else "dim")
            heading.append(" ")
        heading.append(f"  {self.KEY}: switch", style="dim")
        self.query_one(".views-heading", Static).update(heading)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "view":
            return parameters[0] != self.current
        return super().check_action(action, parameters)

    def action_view(self, name: str) -> None:
        self.query_one(ContentSwitcher).current = f"{name}-pane"
        self._heading()
        self.view_pane(name).focus_table()
        self.refresh_bindings()

    def focus_table(self) -> None:
        self.view_pane(self.current).focus_table()

    def reveal(self, key: str, view: str = "") -> None:
        shown = view or self.current
        if shown != self.current:
            self.action_view(shown)
        self.view_pane(shown).reveal(key)

    def commands(self) -> Iterator[SystemCommand]:
        for name, (title, _) in self.VIEWS.items():
            yield SystemCommand(
                f"Show {title.lower()}",
                f"Switch to {title.lower()} ({self.KEY})",
                lambda n=name: self.action_view(n),
            )
            yield from self.view_pane(name).commands()
