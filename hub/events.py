"""A small observer list: services say what changed, others react after the commit.

The registry and the enrolment service announce changes that alter what agents
may install (a production version, an agent joining or leaving a group); the
update publisher listens and signs new metadata. Listeners run after the
announcing transaction committed; one that fails is logged, never undoes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

Listener = Callable[[str, str], None]
"""Called with (actor, reason)."""


class Changes:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def announce(self, actor: str, reason: str) -> None:
        for listener in self._listeners:
            try:
                listener(actor, reason)
            except Exception:
                log.exception("reacting to %r failed; the change itself stands", reason)
