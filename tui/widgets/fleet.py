"""Fleet: every agent with where it runs, what it runs and how it feels; details (its drift
and latency too), enrol, revoke, and an offline update bundle for a group."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Input, Static
from textual.widgets.data_table import RowKey

from appliance.wire.fleet import AgentInfo
from tui.dialogs import (
    AgentDialog,
    DownloadDialog,
    EnrolDialog,
    EnrolRequest,
    ExportDialog,
    ExportRequest,
    InfoDialog,
)
from tui.format import common as fmt
from tui.messages import ActionDone
from tui.widgets.pane import HubPane
from tui.widgets.table import selected_key

COLUMNS = (
    "id",
    "name",
    "health",
    "zone",
    "group",
    "runtime",
    "release",
    "last heartbeat (UTC)",
    "models",
)
"""Most telling first: at 80 columns the models column is the one that scrolls off."""


class FleetPane(HubPane):
    DEFAULT_CSS = """
    FleetPane #fleet-filter { margin: 0 1; }
    FleetPane DataTable { height: 1fr; }
    FleetPane #fleet-status { height: 1; color: $text-muted; padding: 0 1; }
    """
    NEEDS = "agents:read"
    ACTION_NEEDS = {"enrol": "agents:enrol", "revoke": "agents:revoke", "export": "updates:export"}
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter"),
        Binding("s", "sort", "Sort"),
        Binding("enter", "details", "Details", show=False),
        Binding("e", "enrol", "Enrol"),
        Binding("r", "revoke", "Revoke"),
        Binding("u", "export", "Update bundle"),
    ]

    class AgentsLoaded(Message):
        def __init__(self, agents: list[AgentInfo]) -> None:
            super().__init__()
            self.agents = agents

    class TokenCreated(Message):
        def __init__(self, token: dict[str, Any]) -> None:
            super().__init__()
            self.token = token

    agents: list[AgentInfo] = []
    """As the hub last listed them (replaced on each load, never changed in place)."""
    sort_by = "name"

    def compose(self) -> ComposeResult:
        yield Input(
            placeholder="filter: name, zone, group, runtime, release, model, health…",
            id="fleet-filter",
            compact=True,
        )
        yield DataTable(id="fleet-table", cursor_type="row", zebra_stripes=True)
        yield Static("loading agents…", id="fleet-status", markup=False)

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.refresh_data()

    # -- data ------------------------------------------------------------------------

    def refresh_data(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="fleet-load")
    def load(self) -> None:
        agents = self.call_hub(self.hub.list_agents)
        if agents is not None:
            self.post_message(self.AgentsLoaded(agents))

    def on_fleet_pane_agents_loaded(self, message: AgentsLoaded) -> None:
        self.agents = message.agents
        self._show()

    @on(Input.Changed, "#fleet-filter")
    def _filter_changed(self) -> None:
        self._show()

    @on(Input.Submitted, "#fleet-filter")
    def _filter_done(self) -> None:
        self.query_one(DataTable).focus()

    def _show(self) -> None:
        table = self.query_one(DataTable)
        keep = self.selected()
        needle = self.query_one("#fleet-filter", Input).value
        shown = sorted(
            (a for a in self.agents if fmt.agent_matches(a, needle)),
            key=fmt.AGENT_SORTS[self.sort_by],
        )
        table.clear()
        for agent in shown:
            health = fmt.agent_health(agent)
            table.add_row(
                str(agent.id),
                Text(agent.name),
                fmt.styled(health, fmt.HEALTH_STYLE),
                Text(agent.zone),
                Text(agent.group),
                Text(agent.runtime),
                Text(agent.software_version or "-"),
                fmt.moment(agent.last_seen_at),
                Text(fmt.installed(agent.models)),
                key=str(agent.id),
            )
        if keep is not None and str(keep.id) in {str(a.id) for a in shown}:
            table.move_cursor(row=table.get_row_index(RowKey(str(keep.id))))
        unhealthy = sum(1 for a in shown if fmt.agent_health(a) in ("degraded", "failing"))
        self.query_one("#fleet-status", Static).update(
            f"{len(shown)} of {len(self.agents)} agents · {unhealthy} unhealthy · "
            f"sorted by {self.sort_by} (s)"
        )

    def selected(self) -> AgentInfo | None:
        key = selected_key(self.query_one(DataTable))
        return next((a for a in self.agents if str(a.id) == key), None)

    # -- actions ---------------------------------------------------------------------

    def action_focus_filter(self) -> None:
        self.query_one("#fleet-filter", Input).focus()

    def action_sort(self) -> None:
        keys = list(fmt.AGENT_SORTS)
        self.sort_by = keys[(keys.index(self.sort_by) + 1) % len(keys)]
        self._show()

    @on(DataTable.RowSelected, "#fleet-table")
    def action_details(self) -> None:
        agent = self.selected()
        if agent is not None:
            self.app.push_screen(AgentDialog(self.hub, agent))

    def action_enrol(self) -> None:
        zone = fmt.usual_zone(self.agents) or ""
        self.app.push_screen(EnrolDialog(zone), self._enrol_answered)

    def _enrol_answered(self, request: EnrolRequest | None) -> None:
        if request is not None:
            self.create_token(request)

    @work(thread=True, group="fleet-act")
    def create_token(self, request: EnrolRequest) -> None:
        token = self.call_hub(
            lambda: self.hub.create_enrolment_token(
                request.zone, request.group, request.ttl_hours * 3600
            )
        )
        if token is not None:
            self.post_message(self.TokenCreated(token))

    def on_fleet_pane_token_created(self, message: TokenCreated) -> None:
        token = message.token
        body = (
            f"zone {token['zone']}, group {token['group']}; works once, until "
            f"{fmt.moment(token['expires_at'])} UTC. It is shown only now.\n\n"
            "On the new box:\n"
            f"  appliance agent serve --hub {self.hub.base_url} --enrol-token TOKEN"
        )
        self.app.push_screen(InfoDialog("One-time enrolment token", body, secret=token["token"]))

    def action_revoke(self) -> None:
        agent = self.selected()
        if agent is None:
            return
        if agent.revoked_at:
            self.post_message(ActionDone(f"{agent.name} is already revoked"))
            return
        self.confirm(
            f"Revoke agent {agent.name}?",
            f"{agent.name} (id {agent.id}, {agent.zone}/{agent.group}) will be refused on every "
            "later call: no more models, no heartbeats. It must be enrolled again with a new "
            "token to come back.",
            "Revoke",
            lambda: self.revoke(agent),
        )

    @work(thread=True, group="fleet-act")
    def revoke(self, agent: AgentInfo) -> None:
        revoked = self.call_hub(lambda: self.hub.revoke_agent(agent.id))
        if revoked is not None:
            self.post_message(ActionDone(f"revoked {revoked.name}"))
            self.app.call_from_thread(self.refresh_data)

    def action_export(self) -> None:
        agent = self.selected()  # its group, by default
        if agent is None:
            dialog = ExportDialog(fmt.usual_zone(self.agents) or "", "default")
        else:
            dialog = ExportDialog(agent.zone, agent.group)
        self.app.push_screen(dialog, self._export_answered)

    def _export_answered(self, request: ExportRequest | None) -> None:
        if request is None:
            return

        def export() -> str:
            expires = self.hub.export_update(
                request.zone, request.group, request.dest, days=request.days
            )
            return (
                f"Valid until {fmt.moment(expires)} UTC. On each agent of the group: "
                f"'appliance bundle import {request.dest.name}'."
            )

        title = f"Offline update bundle for {request.zone}/{request.group}"
        self.app.push_screen(DownloadDialog(title, request.dest, export))

    def commands(self) -> Iterator[SystemCommand]:
        yield from self.command("Enrol agent", "Create a one-time enrolment token", "enrol")
        yield from self.command("Revoke agent", "Revoke the selected agent", "revoke")
        yield from self.command(
            "Export update bundle", "A group's signed models, for offline agents", "export"
        )
