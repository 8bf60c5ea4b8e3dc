"""Who is calling: a signed-in user or an enrolled agent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hub.auth.roles import Permission


@dataclass(frozen=True)
class Principal:
    kind: Literal["user", "agent"]
    id: int
    name: str
    roles: frozenset[str]
    permissions: frozenset[Permission]
    zone: str | None = None
    group: str | None = None
    token_id: str | None = None
    token_expires: int | None = None

    @property
    def actor(self) -> str:
        """How the audit log names the caller, e.g. ``user:alice`` or ``agent:edge-1``."""
        return f"{self.kind}:{self.name}"
