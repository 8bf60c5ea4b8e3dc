"""Sticky cohorts: a subject id and an experiment's salt decide the variant, anywhere.

The same subject gets the same variant on every agent, online or offline, with
no coordination: the first 8 bytes of SHA-256(salt, subject) read as a number
in [0, 1) fall into one variant's share of the cumulative weights. A request
without a subject id gets a random variant and is marked so.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

_SCALE = float(1 << 64)


@dataclass(frozen=True)
class Assignment:
    variant: str
    sticky: bool
    """False when the request carried no subject id (a random draw)."""


class CohortPicker:
    def __init__(self, salt: str, variants: Sequence[tuple[str, float]]) -> None:
        if not variants or any(w < 0 for _, w in variants) or sum(w for _, w in variants) <= 0:
            raise ValueError("variants need non-negative weights with a positive sum")
        total = sum(w for _, w in variants)
        self.salt = salt.encode()
        self.names = [name for name, _ in variants]
        self.bounds = list(accumulate(w / total for _, w in variants))
        self.bounds[-1] = 1.0  # no rounding gap at the top

    def point(self, subject: str) -> float:
        digest = hashlib.sha256(self.salt + b"\x00" + subject.encode()).digest()
        return int.from_bytes(digest[:8], "big") / _SCALE

    def _at(self, x: float) -> str:
        for name, bound in zip(self.names, self.bounds, strict=True):
            if x < bound:
                return name
        return self.names[-1]

    def assign(self, subject: str | None) -> Assignment:
        if subject:
            return Assignment(self._at(self.point(subject)), sticky=True)
        return Assignment(self._at(random.random()), sticky=False)
