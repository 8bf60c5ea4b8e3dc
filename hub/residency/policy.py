"""The residency policy file and the pure decision function.

The policy is a TOML file (``residency.toml`` in the hub's data directory, or
``APPLIANCE_RESIDENCY_POLICY``)::

    zones = ["ae-dxb", "ae-auh"]

    [read]      # a worker in zone K may read training data from these zones
    ae-dxb = ["ae-dxb"]
    ae-auh = ["ae-auh"]

    [deploy]    # a model trained on data from zone K may serve in these agent zones
    ae-dxb = ["ae-dxb"]
    ae-auh = ["ae-auh", "ae-dxb"]

A zone missing from ``read`` or ``deploy`` may read or deploy within itself
only. Without a file the hub knows its own zone alone. Decisions are pure:
they take zones and return a :class:`Decision` naming the rule that decided.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from appliance.errors import ConfigError, InvalidInputError

Flow = Literal["read", "deploy"]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    flow: Flow
    rule: str
    """The rule that decided, e.g. ``deploy.ae-auh`` (or ``unknown-zone``)."""
    reason: str
    subject_zone: str
    object_zones: tuple[str, ...]


@dataclass(frozen=True)
class ResidencyPolicy:
    zones: tuple[str, ...]
    read: dict[str, frozenset[str]] = field(default_factory=dict)
    deploy: dict[str, frozenset[str]] = field(default_factory=dict)
    source: str = "built-in default"

    @classmethod
    def single_zone(cls, zone: str) -> ResidencyPolicy:
        return cls(zones=(zone,), source=f"default: only zone {zone}")

    @classmethod
    def load(cls, path: Path) -> ResidencyPolicy:
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"no residency policy at {path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"residency policy {path} is not valid TOML: {exc}") from exc
        zones = raw.get("zones")
        if not isinstance(zones, list) or not zones or not all(isinstance(z, str) for z in zones):
            raise ConfigError(f"residency policy {path}: 'zones' must be a list of zone names")
        tables: dict[str, dict[str, frozenset[str]]] = {}
        for section in ("read", "deploy"):
            table = raw.get(section, {})
            if not isinstance(table, dict):
                raise ConfigError(f"residency policy {path}: [{section}] must be a table")
            for key, targets in table.items():
                names = [key, *targets] if isinstance(targets, list) else None
                if names is None or any(z not in zones for z in names):
                    raise ConfigError(
                        f"residency policy {path}: [{section}] {key} = {targets!r} "
                        f"names a zone not in zones {zones}"
                    )
            tables[section] = {k: frozenset(v) for k, v in table.items()}
        return cls(
            zones=tuple(zones), read=tables["read"], deploy=tables["deploy"], source=str(path)
        )

    def check_zones(self, zones: Iterable[str], field_name: str) -> tuple[str, ...]:
        given = tuple(dict.fromkeys(zones))
        unknown = [z for z in given if z not in self.zones]
        if unknown or not given:
            raise InvalidInputError(
                f"{field_name}: unknown zone(s) {unknown or 'none given'}; "
                f"zones configured on this hub: {list(self.zones)}"
            )
        return given

    def _allowed(self, table: dict[str, frozenset[str]], zone: str) -> frozenset[str]:
        return table.get(zone, frozenset({zone}))

    def decide(self, flow: Flow, subject_zone: str, object_zones: Iterable[str]) -> Decision:
        """May data from ``object_zones`` go to ``subject_zone`` for ``flow``?

        ``read``: a worker in ``subject_zone`` reads data from ``object_zones``.
        ``deploy``: a model whose data came from ``object_zones`` serves in ``subject_zone``.
        Every object zone must allow it; the first that does not names the rule.
        """
        objects = tuple(object_zones)
        if subject_zone not in self.zones:
            return Decision(
                False,
                flow,
                "unknown-zone",
                f"zone {subject_zone!r} is not configured on this hub",
                subject_zone,
                objects,
            )
        table = self.read if flow == "read" else self.deploy
        for zone in objects:
            if flow == "read":
                allowed = zone in self._allowed(table, subject_zone)
                rule = f"read.{subject_zone}"
            else:
                allowed = subject_zone in self._allowed(table, zone)
                rule = f"deploy.{zone}"
            if not allowed:
                verb = "may not read data from" if flow == "read" else "may not be deployed to"
                what = (
                    f"workers in {subject_zone} {verb} {zone}"
                    if flow == "read"
                    else f"models trained on {zone} data {verb} {subject_zone}"
                )
                return Decision(False, flow, rule, f"{what} (rule {rule})", subject_zone, objects)
        rules = ", ".join(f"{flow}.{subject_zone if flow == 'read' else z}" for z in objects)
        return Decision(True, flow, rules or flow, "allowed", subject_zone, objects)
