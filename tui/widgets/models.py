"""Models: every version with its stage, metrics, lineage and approvals; move it along.

Promote (candidate -> staging) changes nothing in production and goes straight
through; approve (into production) and archive ask first. When the hub needs
more approvers it answers 202 and the version stays where it was: the pane says
how many approvals it has so far. Approvers roll a staging version out (a form,
then the Rollouts view showing it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Static
from textual.widgets.data_table import RowKey

from appliance.wire.registry import VersionInfo
from tui.dialogs import RolloutDialog
from tui.format import common as fmt
from tui.format import releases as fr
from tui.messages import ActionDone, ActionFailed, Reveal
from tui.records import Rollout, convert
from tui.widgets.pane import HubPane
from tui.widgets.table import selected_key

COLUMNS = ("model", "ver", "stage", "approvals", "metrics", "created (UTC)", "by")


class ModelsPane(HubPane):
    DEFAULT_CSS = """
    ModelsPane DataTable { height: 1fr; }
    ModelsPane #model-details {
        height: auto; max-height: 9; border-top: solid $primary; padding: 0 1;
    }
    """
    NEEDS = "models:read"
    ACTION_NEEDS = {
        "promote": "models:stage",
        "approve": "models:approve",
        "archive": "models:stage",
        "roll_out": "models:approve",
    }
    BINDINGS = [
        Binding("p", "promote", "Promote to staging"),
        Binding("a", "approve", "Approve for production"),
        Binding("x", "archive", "Archive"),
        Binding("o", "roll_out", "Roll out"),
    ]

    class VersionsLoaded(Message):
        def __init__(self, versions: list[VersionInfo]) -> None:
            super().__init__()
            self.versions = versions

    versions: list[VersionInfo] = []
    """As the hub last listed them (replaced on each load, never changed in place)."""

    def compose(self) -> ComposeResult:
        yield DataTable(id="models-table", cursor_type="row", zebra_stripes=True)
        yield Static("loading models…", id="model-details", markup=False)

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.refresh_data()

    def refresh_data(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="models-load")
    def load(self) -> None:
        def every_version() -> list[VersionInfo]:
            found = []
            for summary in self.hub.list_models():
                detail = self.hub.get_model(summary.name)
                found += sorted(detail.versions, key=lambda v: -v.version)
            return found

        versions = self.call_hub(every_version)
        if versions is not None:
            self.post_message(self.VersionsLoaded(versions))

    def on_models_pane_versions_loaded(self, message: VersionsLoaded) -> None:
        table = self.query_one(DataTable)
        keep = self.selected()
        self.versions = message.versions
        table.clear()
        for v in self.versions:
            table.add_row(
                Text(v.name),
                str(v.version),
                fmt.styled(v.stage, fmt.STAGE_STYLE),
                str(len(v.approvals)) if v.approvals else "-",
                Text(fmt.metrics_text(v.metrics)),
                fmt.moment(v.created_at),
                Text(v.created_by),
                key=_key(v),
            )
        if keep is not None and any(_key(v) == _key(keep) for v in self.versions):
            table.move_cursor(row=table.get_row_index(RowKey(_key(keep))))
        self._show_details()

    def selected(self) -> VersionInfo | None:
        key = selected_key(self.query_one(DataTable))
        return next((v for v in self.versions if _key(v) == key), None)

    @on(DataTable.RowHighlighted, "#models-table")
    def _show_details(self) -> None:
        version = self.selected()
        details = self.query_one("#model-details", Static)
        if version is None:
            details.update("no models registered yet: 'appliance model import FILE.onnx --name N'")
        else:
            details.update(fmt.version_details(version))

    # -- actions ---------------------------------------------------------------------

    def action_promote(self) -> None:
        version = self.selected()
        if version is not None:
            self.change_stage(version, "staging")

    def staging(self, doing: str) -> VersionInfo | None:
        """The selected version if it is in staging; else say it cannot be ``doing``."""
        version = self.selected()
        if version is not None and version.stage != "staging":
            said = f"only a staging version can be {doing} ({version.stage} now)"
            self.post_message(ActionFailed(said))
            return None
        return version

    def action_approve(self) -> None:
        version = self.staging("approved")
        if version is None:
            return
        self._confirm(
            version,
            "production",
            f"Approve {version.name} v{version.version} for production?",
            "Your approval is recorded. Once enough approvers agree, this version serves on "
            "every agent and the current production version is archived.",
            "Approve",
        )

    def action_archive(self) -> None:
        version = self.selected()
        if version is None:
            return
        live = version.stage == "production"
        self._confirm(
            version,
            "archived",
            f"Archive {version.name} v{version.version}?",
            (
                "It is in PRODUCTION: agents stop serving it and the model has no production "
                "version until another is approved."
                if live
                else f"It leaves {version.stage}; coming back needs staging and approval again."
            ),
            "Archive",
        )

    def action_roll_out(self) -> None:
        version = self.staging("rolled out")
        if version is not None:
            self.ask_rollout(version)

    @work(thread=True, group="models-act")
    def ask_rollout(self, version: VersionInfo) -> None:
        """The form, its zone the one most agents are in (read from the fleet first)."""
        agents = self.call_hub(self.hub.list_agents)
        if agents is None:
            return
        zone = fmt.usual_zone(agents) or next(iter(version.zones), "")
        dialog = RolloutDialog(
            version.name,
            version.version,
            zone=zone,
            hint=f"Groups in {zone or 'the zone'}, with their agents: "
            f"{fmt.groups_text(agents, zone)}.",
        )
        self.app.call_from_thread(self.app.push_screen, dialog, self.start_rollout)

    def start_rollout(self, spec: dict[str, Any] | None) -> None:
        if spec is not None:
            self.act(
                lambda: convert(self.hub.start_rollout(spec), Rollout, "a rollout"),
                fr.rollout_started,
                lambda rollout: self.post_message(
                    Reveal("releases", str(rollout.id), view="rollouts")
                ),
            )

    def _confirm(
        self, version: VersionInfo, stage: str, title: str, body: str, confirm: str
    ) -> None:
        self.confirm(title, body, confirm, lambda: self.change_stage(version, stage))

    @work(thread=True, group="models-act")
    def change_stage(self, version: VersionInfo, stage: str) -> None:
        info = self.call_hub(lambda: self.hub.change_stage(version.name, version.version, stage))
        if info is not None:
            self.post_message(ActionDone(fmt.stage_outcome(stage, info)))
            self.app.call_from_thread(self.refresh_data)

    def commands(self) -> Iterator[SystemCommand]:
        yield from self.command("Promote to staging", "The selected version", "promote")
        yield from self.command("Approve for production", "The selected version", "approve")
        yield from self.command("Archive version", "The selected version", "archive")
        yield from self.command("Roll out", "The selected staging version", "roll_out")


def _key(version: VersionInfo) -> str:
    return f"{version.name}@{version.version}"
