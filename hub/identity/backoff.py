"""Per-account sign-in backoff, beside the per-address rate limit.

The rate limit counts requests per client address, which a password guesser spreading
over many addresses (or forging them) never hits. This counts failed sign-ins per
*username*: once ``free_failures`` (5) fail in a row, the account may not sign in for
``base_s`` (30 s), and each further failure doubles the wait (at most ``max_s``, 15
minutes), whatever address the attempts come from and even with the right password. A
successful sign-in clears the count. (The price: a guesser can keep one account locked;
the site's admins see it in the audit log, ``auth.sign_in`` refused.)

State is in memory and bounded (the oldest usernames are forgotten first), so a flood
of made-up names cannot grow the hub; a restart forgets it, which costs an attacker a
restart per ``free_failures`` guesses.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class SignInBackoff:
    """Not a dataclass: Litestar converts dataclass dependencies field by field, and a lock
    is no field it knows."""

    def __init__(
        self,
        *,
        free_failures: int = 5,
        base_s: float = 30.0,
        max_s: float = 900.0,
        max_accounts: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_failures = free_failures
        self.base_s = base_s
        self.max_s = max_s
        self.max_accounts = max_accounts
        self.clock = clock
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait_s(self, username: str) -> float:
        """Seconds before ``username`` may try again; 0 when it may now."""
        with self._lock:
            _count, until = self._failures.get(username, (0, 0.0))
        return max(0.0, until - self.clock())

    def failed(self, username: str) -> int:
        """Count a failed sign-in; the failures in a row so far."""
        with self._lock:
            count, _until = self._failures.pop(username, (0, 0.0))
            count += 1
            over = count - self.free_failures + 1  # the 5th failure in a row starts the wait
            delay = min(self.max_s, self.base_s * 2.0 ** min(over - 1, 40))
            until = self.clock() + delay if over > 0 else 0.0
            self._failures[username] = (count, until)
            while len(self._failures) > self.max_accounts:
                self._failures.popitem(last=False)
            return count

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(username, None)
