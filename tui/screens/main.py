"""The main screen: a tab per area of the hub, a banner when the hub is away, a refresh timer.

The timer refreshes the tab on show (a tab is also refreshed when it is opened);
``f5`` refreshes every tab. Each pane names its own command palette entries.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

from tui.hub import HubApi
from tui.messages import ActionDone, ActionFailed, HubLost, Reveal
from tui.widgets import AuditPane, DriftPane, FleetPane, ModelsPane, ReleasesPane, TrainingPane
from tui.widgets.pane import HubPane

TABS = {
    "fleet": "Fleet",
    "models": "Models",
    "audit": "Audit",
    "training": "Training",
    "releases": "Rollouts & A/B",
    "drift": "Drift",
}
PANES: dict[str, type[HubPane]] = {
    "fleet": FleetPane,
    "models": ModelsPane,
    "audit": AuditPane,
    "training": TrainingPane,
    "releases": ReleasesPane,
    "drift": DriftPane,
}


class MainScreen(Screen[None]):
    DEFAULT_CSS = """
    MainScreen #banner {
        display: none; height: auto; padding: 0 1;
        background: $error; color: $text; text-style: bold;
    }
    MainScreen #banner.shown { display: block; }
    MainScreen TabPane { padding: 0; }
    MainScreen .not-allowed { padding: 1 2; color: $text-muted; }
    """
    BINDINGS = [
        *(
            Binding(str(number), f"show('{tab}')", label)
            for number, (tab, label) in enumerate(TABS.items(), start=1)
        ),
        Binding("f5,ctrl+r", "refresh_all", "Refresh"),
    ]

    def __init__(self, hub: HubApi, me: dict[str, Any], *, refresh_s: float = 5.0) -> None:
        super().__init__()
        self.hub = hub
        self.me = me
        self.refresh_s = refresh_s
        self.hub_lost = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="banner", markup=False)
        allowed = frozenset(self.me.get("permissions", []))
        with TabbedContent(initial="fleet"):
            for tab, pane in PANES.items():
                with TabPane(TABS[tab], id=tab):
                    if pane.NEEDS in allowed:
                        yield pane(self.hub, id=f"{tab}-pane", allowed=allowed)
                    else:
                        yield Static(
                            f"Your roles cannot read this ({pane.NEEDS} is needed; "
                            "see docs/security.md).",
                            classes="not-allowed",
                        )
        yield Footer()

    def on_mount(self) -> None:
        roles = ", ".join(self.me.get("roles", [])) or "no roles"
        self.sub_title = f"{self.me.get('actor', '?')} ({roles}) @ {self.hub.base_url}"
        self.set_interval(self.refresh_s, self.action_refresh_shown)
        self._focus_table("fleet")

    def _tab_pane(self, tab: str) -> HubPane | None:
        return next(iter(self.query(f"#{tab}-pane").results(HubPane)), None)

    def _focus_table(self, tab: str) -> None:
        pane = self._tab_pane(tab)
        if pane is not None:
            pane.focus_table()

    def action_show(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self._focus_table(tab)

    def action_refresh_all(self) -> None:
        for pane in self.query(HubPane):
            pane.refresh_data()

    def action_refresh_shown(self) -> None:
        """The timer: the tab on show (every tab while the hub is away, to see it back)."""
        pane = self._tab_pane(self.query_one(TabbedContent).active)
        if pane is None or self.hub_lost:
            self.action_refresh_all()
        else:
            _refresh(pane)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        tab = event.pane.id
        if tab:
            self._focus_table(tab)
            pane = self._tab_pane(tab)
            if pane is not None and pane.is_mounted:
                _refresh(pane)

    def on_hub_lost(self, message: HubLost) -> None:
        self.hub_lost = True
        banner = self.query_one("#banner", Static)
        banner.update(f"Hub unreachable; retrying every {self.refresh_s:g} s. {message.reason}")
        banner.add_class("shown")

    def on_hub_reached(self) -> None:
        if self.hub_lost:
            self.hub_lost = False
            self.query_one("#banner", Static).remove_class("shown")
            self.notify("The hub is back; data refreshed.", title="Hub reachable")
            self.action_refresh_all()

    def on_action_failed(self, message: ActionFailed) -> None:
        self.notify(message.text, severity="error", timeout=8)

    def on_action_done(self, message: ActionDone) -> None:
        self.notify(message.text)

    def on_reveal(self, message: Reveal) -> None:
        pane = self._tab_pane(message.tab)
        if pane is not None:
            self.action_show(message.tab)
            pane.reveal(message.key, message.view)

    def commands(self) -> Iterator[SystemCommand]:
        """Entries for the command palette while this screen is shown."""
        for tab, label in TABS.items():
            yield SystemCommand(label, f"Show the {label} tab", lambda t=tab: self.action_show(t))
        yield SystemCommand("Refresh", "Fetch everything again now", self.action_refresh_all)
        for tab in TABS:
            pane = self._tab_pane(tab)
            if pane is not None:
                yield from pane.commands()


def _refresh(pane: HubPane) -> None:
    """A tab's pane and the panes inside it (a tab with two views)."""
    pane.refresh_data()
    for inner in pane.query(HubPane):
        inner.refresh_data()
