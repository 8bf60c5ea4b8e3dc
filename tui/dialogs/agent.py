"""One agent's details, then its latest drift windows and serving reports once read.

The hub lists reports oldest first, a page at a time; the latest page is found with
:func:`tui.records.read_tail` (a few calls however long the agent's history).
"""

from __future__ import annotations

from collections.abc import Sequence

from textual import work

from appliance.errors import ApplianceError
from appliance.wire.fleet import AgentInfo
from tui.dialogs.info import InfoDialog
from tui.format.agent import agent_details
from tui.hub import HubApi, describe
from tui.records import DriftReport, ServingReport, convert, read_tail

PAGE = 100
"""The hub's page of reports (the client asks for its default)."""


class AgentDialog(InfoDialog):
    def __init__(self, hub: HubApi, agent: AgentInfo) -> None:
        super().__init__(f"Agent {agent.name}", agent_details(agent))
        self.hub = hub
        self.agent = agent

    def on_mount(self) -> None:
        self.read_reports()

    @work(thread=True, exclusive=True, group="agent-reports")
    def read_reports(self) -> None:
        try:
            body = agent_details(self.agent, self._drift(), self._serving())
        except ApplianceError as exc:
            body = agent_details(self.agent, pending=f"Its reports: {describe(exc)}")
        self.app.call_from_thread(self.show_body, body)

    def _drift(self) -> Sequence[DriftReport]:
        def page(after: int) -> list[DriftReport]:
            found = self.hub.drift_reports(agent_id=self.agent.id, after=after)
            return convert(found, list[DriftReport], "drift reports")

        return read_tail(page, lambda r: r.id, full=PAGE)

    def _serving(self) -> Sequence[ServingReport]:
        def page(after: int) -> list[ServingReport]:
            found = self.hub.serving_history(agent_id=self.agent.id, after=after)
            return convert(found, list[ServingReport], "serving reports")

        return read_tail(page, lambda r: r.id, full=PAGE)
