"""Telling systemd a service is ready (``Type=notify`` units), with no dependency.

The protocol is one datagram to the Unix socket named by ``$NOTIFY_SOCKET``
(``@`` marks an abstract socket). Outside systemd the variable is unset and
this does nothing, so the services run the same by hand and in tests.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``READY=1``); True if systemd was there to hear it."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:  # a service must not die because systemd went away
        log.warning("could not notify systemd (%s): %s", state, exc)
        return False
    return True
