"""Asks for the zone and group of a new agent's one-time enrolment token."""

from __future__ import annotations

from dataclasses import dataclass

from tui.dialogs.form import Field, FormDialog, required, whole


@dataclass(frozen=True)
class EnrolRequest:
    zone: str
    group: str
    ttl_hours: int


class EnrolDialog(FormDialog[EnrolRequest]):
    def __init__(self, zone: str = "ae-dxb", group: str = "default") -> None:
        super().__init__(
            "Enrol an agent: one-time token",
            [
                Field("zone", "zone", zone),
                Field("group", "group", group),
                Field("ttl", "valid (hours)", "24", type="integer"),
            ],
            submit="Create token",
        )

    def build(self, values: dict[str, str]) -> EnrolRequest:
        return EnrolRequest(
            required(values["zone"], "A zone"),
            values["group"] or "default",
            whole(values["ttl"], "valid (hours)", least=1, default=24),
        )
