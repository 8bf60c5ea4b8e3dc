"""Asks which group's offline update bundle to export, and where to write it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tui.dialogs.form import Field, FormDialog, optional_whole, required


@dataclass(frozen=True)
class ExportRequest:
    zone: str
    group: str
    dest: Path
    days: int | None


class ExportDialog(FormDialog[ExportRequest]):
    def __init__(self, zone: str, group: str) -> None:
        super().__init__(
            "Export an offline update bundle",
            [
                Field("zone", "zone", zone),
                Field("group", "group", group),
                Field("dest", "write to", placeholder="update-ZONE-GROUP.tar (here)"),
                Field("days", "valid (days)", placeholder="the hub's policy", type="integer"),
            ],
            submit="Export",
            hint="The group's signed models, for agents without a network: "
            "'appliance bundle import FILE' on each.",
        )

    def build(self, values: dict[str, str]) -> ExportRequest:
        zone = required(values["zone"], "A zone")
        group = values["group"] or "default"
        return ExportRequest(
            zone,
            group,
            destination(values["dest"], f"update-{zone}-{group}.tar"),
            optional_whole(values["days"], "valid (days)", least=1),
        )


def destination(typed: str, name: str) -> Path:
    """The file to write: ``typed`` (a folder gets ``name``), never over an existing file."""
    dest = Path(typed or name).expanduser()
    if dest.is_dir():
        dest = dest / name
    if not dest.parent.is_dir():
        raise ValueError(f"No folder {dest.parent}: create it first.")
    if not os.access(dest.parent, os.W_OK):
        raise ValueError(f"Cannot write in {dest.parent}.")
    if dest.exists():
        raise ValueError(f"{dest} exists: name a new file.")
    return dest.absolute()
