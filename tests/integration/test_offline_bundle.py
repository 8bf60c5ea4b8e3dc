"""Air-gapped agents: an update bundle exported by the hub, carried over, imported by the CLI."""

from __future__ import annotations

import pytest

from appliance.errors import HubRejectedError
from tests.harness.site import MODEL, publish, serving_version, wait_until
from tests.integration.test_cli import appliance

pytestmark = pytest.mark.integration


def test_air_gapped_agent_installs_an_exported_bundle_while_serving(
    hub, admin, engineer, approver, start_agent, tmp_path
):
    agent = start_agent("usb-1")
    first = publish(engineer, approver).version
    wait_until("the first version", lambda: serving_version(agent) == str(first))
    agent.stop()  # from now on the box has no route to the hub
    hub_at = agent.args.index("--hub") + 1
    agent.args[hub_at] = "http://127.0.0.1:9"
    agent.start()
    agent.wait_healthy()
    second = publish(engineer, approver).version
    stick = tmp_path / "update.tar"
    expires = admin.export_update("ae-dxb", "default", stick)
    assert expires.endswith("Z")
    data_dir = agent.args[agent.args.index("--data-dir") + 1]
    imported = appliance("bundle", "import", str(stick), "--data-dir", data_dir)
    assert imported.returncode == 0, imported.stderr
    assert f"installed {MODEL} v{second}" in imported.stdout
    wait_until("the running agent to serve it", lambda: serving_version(agent) == str(second))
    replay = appliance("bundle", "import", str(stick), "--data-dir", data_dir)
    assert replay.returncode == 0 and "already installed" in replay.stdout


def test_export_needs_the_export_permission(engineer, tmp_path):
    with pytest.raises(HubRejectedError) as refused:
        engineer.export_update("ae-dxb", "default", tmp_path / "u.tar")
    assert refused.value.status_code == 403
    assert not (tmp_path / "u.tar").exists()
