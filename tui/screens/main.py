"""The main screen: a tab per area of the hub, a banner when the hub is away, a refresh timer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

from tui.hub import HubApi
from tui.messages import ActionDone, ActionFailed, HubLost
from tui.widgets import AuditPane, FleetPane, ModelsPane
from tui.widgets.pane import HubPane

TABS = {"fleet": "Fleet", "models": "Models", "audit": "Audit"}
PANES: dict[str, type[HubPane]] = {"fleet": FleetPane, "models": ModelsPane, "audit": AuditPane}


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
        Binding("1", "show('fleet')", "Fleet"),
        Binding("2", "show('models')", "Models"),
        Binding("3", "show('audit')", "Audit"),
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
        allowed = set(self.me.get("permissions", []))
        with TabbedContent(initial="fleet"):
            for tab, pane in PANES.items():
                with TabPane(TABS[tab], id=tab):
                    if pane.NEEDS in allowed:
                        yield pane(self.hub, id=f"{tab}-pane")
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
        self.set_interval(self.refresh_s, self.action_refresh_all)
        self._focus_table("fleet")

    def _focus_table(self, tab: str) -> None:
        for table in self.query(f"#{tab}-table"):
            table.focus()

    def action_show(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self._focus_table(tab)

    def action_refresh_all(self) -> None:
        for pane in self.query(HubPane):
            pane.refresh_data()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        tab = event.pane.id
        if tab:
            self._focus_table(tab)

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

    def commands(self) -> Iterator[SystemCommand]:
        """Entries for the command palette while this screen is shown."""
        for tab, label in TABS.items():
            yield SystemCommand(
                label, f"Show the {label.lower()} tab", lambda t=tab: self.action_show(t)
            )
        yield SystemCommand("Refresh", "Fetch everything again now", self.action_refresh_all)
        for fleet in self.query(FleetPane):
            yield SystemCommand(
                "Enrol agent", "Create a one-time enrolment token", fleet.action_enrol
            )
            yield SystemCommand("Revoke agent", "Revoke the selected agent", fleet.action_revoke)
        for models in self.query(ModelsPane):
            yield SystemCommand("Promote to staging", "The selected version", models.action_promote)
            yield SystemCommand(
                "Approve for production", "The selected version", models.action_approve
            )
            yield SystemCommand("Archive version", "The selected version", models.action_archive)
        for audit in self.query(AuditPane):
            yield SystemCommand("Verify audit log", "Check the chain", audit.action_verify)
