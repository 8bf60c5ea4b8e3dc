"""Backing up a running hub (SQLite) while it writes, and starting a hub on the restored copy."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from appliance.cli.demo.processes import ServiceProcess, hub_process
from appliance.cli.demo.site import Site
from appliance.client.hub import HubClient
from appliance.errors import ApplianceError
from appliance.settings import HubSettings
from hub.backup import backup_hub, restore_hub
from tests.harness.models import make_tiny_onnx
from tests.harness.site import publish

pytestmark = pytest.mark.integration


def backup_while_busy(site: Site, hub: ServiceProcess, out: Path) -> int:
    """Back up while another thread keeps signing in (each sign-in is an audit entry)."""
    stop = threading.Event()
    writes: list[int] = []

    def keep_writing() -> None:
        while not stop.is_set():
            try:
                site.sign_in(hub.url, "sara")
                writes.append(1)
            except ApplianceError:
                pass

    writer = threading.Thread(target=keep_writing, daemon=True)
    writer.start()
    try:
        while len(writes) < 2:  # the hub is demonstrably writing before the backup starts
            threading.Event().wait(0.05)
        backup_hub(HubSettings(data_dir=site.hub_dir), out)
    finally:
        stop.set()
        writer.join(timeout=30)
    return len(writes)


def summary(client: HubClient) -> list[tuple[str, int, int | None, list[str]]]:
    return [
        (m.name, m.latest_version, m.production_version,
         [v.bundle_sha256 for v in client.get_model(m.name).versions])
        for m in client.list_models()
    ]  # fmt: skip


def test_a_running_hub_is_backed_up_and_a_hub_on_the_restored_copy_serves_the_same_models(
    site: Site, hub: ServiceProcess, engineer: HubClient, approver: HubClient, workdir: Path
) -> None:
    publish(engineer, approver)
    engineer.upload_model("second", make_tiny_onnx())
    archive = workdir / "running.tar"
    assert backup_while_busy(site, hub, archive) >= 2
    result = restore_hub(archive, workdir / "restored" / "hub")
    assert result.audit.ok, result.audit.summary()

    restored = hub_process(result.data_dir)
    restored.start()
    try:
        restored.wait_healthy()
        alice = site.client(restored.url, "alice")  # the same people, passwords and keys
        sara = site.client(restored.url, "sara")
        assert summary(alice) == summary(engineer)
        assert alice.trusted_root() == engineer.trusted_root()
        assert alice.signing_key_pem() == engineer.signing_key_pem()
        assert sara.verify_audit()["ok"] is True
        alice.close()
        sara.close()
    finally:
        restored.stop()
