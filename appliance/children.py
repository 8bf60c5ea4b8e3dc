"""Child processes that do not outlive the process that started them.

A supervisor, ``timeout`` or a CI runner stops a command by signalling its own process
only; children in sessions of their own (so that Ctrl-C in a terminal reaches the parent
alone) would then live on. The kernel can signal a child when its parent dies (Linux's
``PR_SET_PDEATHSIG``), even when the parent is SIGKILLed and runs no clean-up.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
_LINUX = sys.platform.startswith("linux")
# Resolved here, in the parent: a child between fork and exec must not dlopen.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if _LINUX else None


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> None:
    """Have the kernel send ``sig`` to this process when its parent dies (Linux only)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(sig))


def dying_with(parent: int, sig: signal.Signals = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` for :class:`subprocess.Popen`: the child gets ``sig`` when
    ``parent`` dies, and exits at once if ``parent`` died before it could ask."""

    def preexec() -> None:
        die_with_parent(sig)
        if _LINUX and os.getppid() != parent:
            os._exit(1)

    return preexec
