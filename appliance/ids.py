"""Numbers that name records (ids, versions) as clients write them, checked once.

Python's ``int()`` reads far more than a record id: ``'²'`` is a digit to
``str.isdigit`` but not to ``int``, ``'٣'`` (Arabic-Indic) and ``'1_000'`` are
numbers to ``int``, and a 30-digit id is a number no database column holds. Each
of those reached a handler and came back as a 500. Ids are ASCII digits only,
within a signed 64-bit integer (leading zeros allowed: they are still that number).
"""

from __future__ import annotations

import re

INT64_MAX = 2**63 - 1
_DIGITS = re.compile(r"[0-9]+", re.ASCII)


def parse_id(text: str) -> int | None:
    """``text`` as a record id, or ``None`` when it is not one."""
    if not _DIGITS.fullmatch(text):
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > 19:  # more digits than int64 has (and int() of thousands is slow)
        return None
    value = int(digits)
    return value if value <= INT64_MAX else None


def looks_numeric(text: str) -> bool:
    """Whether ``text`` would pass for a number somewhere (``isdigit`` or ``int()``)."""
    if text.isdigit():
        return True
    try:
        int(text)
    except ValueError:
        return False
    return True


def bad_number_in_path(path: str) -> str | None:
    """The first segment of ``path`` that looks like a number but is no record id."""
    for segment in path.split("/"):
        if segment and looks_numeric(segment) and parse_id(segment) is None:
            return segment
    return None
