"""``Type=notify``: the hub says READY=1 to systemd only once it answers on its port."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from appliance.cli.demo.processes import hub_process

pytestmark = pytest.mark.integration


def test_the_hub_is_ready_when_systemd_hears_so(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(str(path))
        systemd.settimeout(90)
        hub = hub_process(tmp_path / "hub")
        hub.env["NOTIFY_SOCKET"] = str(path)
        hub.start()
        try:
            assert systemd.recv(64) == b"READY=1"
            assert httpx.get(f"{hub.url}/health", timeout=5).status_code == 200  # no retry
            hub.stop()
            assert systemd.recv(64) == b"STOPPING=1"
        finally:
            hub.stop()
