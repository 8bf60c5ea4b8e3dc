"""A short-lived memory of who a verified access token belongs to.

Every user request verified its token's signature (cheap) and then read the
records for revocation, disabled state and roles (a database round trip, on a
thread). The records part is kept here for ``ttl_s`` per token id; the
signature and expiry are still checked on every request. The hub forgets an
entry at once when it signs a token out or disables a user, so those take
effect immediately; a change made outside this process (``--data-dir`` CLI
commands) takes effect within ``ttl_s``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from hub.identity.principal import Principal

DEFAULT_TTL_S = 2.0
MAX_ENTRIES = 10_000


class PrincipalCache:
    def __init__(self, ttl_s: float = DEFAULT_TTL_S, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token_id: str) -> Principal | None:
        with self._lock:
            entry = self._entries.get(token_id)
            if entry is None:
                return None
            if entry[0] < time.monotonic():
                del self._entries[token_id]
                return None
            return entry[1]

    def put(self, token_id: str, principal: Principal) -> None:
        with self._lock:
            self._entries[token_id] = (time.monotonic() + self.ttl_s, principal)
            self._entries.move_to_end(token_id)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def forget_user(self, user_id: int) -> None:
        with self._lock:
            for token_id in [k for k, (_, p) in self._entries.items() if p.id == user_id]:
                del self._entries[token_id]

    def forget(self, token_id: str) -> None:
        with self._lock:
            self._entries.pop(token_id, None)
