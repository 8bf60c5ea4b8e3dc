"""Asks where and how to roll a staging version out: the body of ``POST /api/v1/rollouts/``.

Rings and first agents shape a canary only; the hub's gates (error rate, p95 ratio)
keep its defaults. The hub checks everything again and says why when it refuses.
"""

from __future__ import annotations

from typing import Any

from tui.dialogs.form import Field, FormDialog, names, percentages, required, whole

STRATEGIES = ("canary", "all-at-once", "blue-green")


class RolloutDialog(FormDialog[dict[str, Any]]):
    def __init__(self, model: str, version: int, *, zone: str, hint: str = "") -> None:
        super().__init__(
            f"Roll out {model} v{version} (staging)",
            [
                Field("zone", "zone", zone),
                Field("group", "group", "default"),
                Field("strategy", "strategy", "canary", choices=STRATEGIES),
                Field("rings", "rings (%)", "5,25,100", placeholder="canary: 5,25,100"),
                Field("first", "first agents", placeholder="canary, optional: name, name"),
                Field("soak", "soak (s)", "300", type="integer"),
            ],
            submit="Start rollout",
            hint=hint,
        )
        self.model = model
        self.version = version

    def build(self, values: dict[str, str]) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "model": self.model,
            "version": self.version,
            "zone": required(values["zone"], "A zone"),
            "group": values["group"] or "default",
            "strategy": values["strategy"],
            "soak_s": whole(values["soak"], "soak (s)", default=300),
        }
        first = names(values["first"])
        if values["strategy"] == "canary":
            spec["rings"] = percentages(values["rings"], "rings")
            spec["first_agents"] = first
        elif first:
            raise ValueError(f"first agents: only for a canary, not {values['strategy']}.")
        return spec
