"""The command line as an operator uses it: clear output, clear errors, no tracebacks."""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest

from tests.conftest import make_tiny_onnx

pytestmark = pytest.mark.integration


def appliance(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_import_list_and_promote_against_a_real_hub(hub, tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(make_tiny_onnx())
    imported = appliance(
        "model",
        "import",
        str(model),
        "--name",
        "cli-model",
        "--hub",
        hub.url,
        "--metrics",
        '{"accuracy": 0.91}',
    )
    assert imported.returncode == 0, imported.stderr
    assert "cli-model" in imported.stdout and "candidate" in imported.stdout
    listed = appliance("model", "list", "--hub", hub.url)
    assert listed.returncode == 0 and "cli-model" in listed.stdout and "0.9100" in listed.stdout
    illegal = appliance("model", "promote", "cli-model", "1", "production", "--hub", hub.url)
    assert illegal.returncode == 2
    assert "cannot move from candidate to production" in illegal.stderr
    assert "Traceback" not in illegal.stderr
    assert (
        appliance("model", "promote", "cli-model", "1", "staging", "--hub", hub.url).returncode == 0
    )


def test_unreachable_hub_and_missing_file_are_explained(tmp_path):
    down = appliance("model", "list", "--hub", "http://127.0.0.1:9")
    assert down.returncode == 2 and "unreachable" in down.stderr and "Traceback" not in down.stderr
    missing = appliance(
        "model", "import", str(tmp_path / "nope.onnx"), "--name", "x", "--hub", "http://127.0.0.1:9"
    )
    assert missing.returncode == 2 and "cannot read model" in missing.stderr


def test_keys_init_writes_owner_only_key_and_reuses_it(tmp_path):
    first = appliance("keys", "init", "--data-dir", str(tmp_path / "d"))
    assert first.returncode == 0 and "created" in first.stdout
    key = tmp_path / "d" / "keys" / "signing.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = key.read_bytes()
    again = appliance("keys", "init", "--data-dir", str(tmp_path / "d"))
    assert "kept existing" in again.stdout and key.read_bytes() == before


def test_agent_without_a_pinned_key_refuses_to_start_with_a_hint(tmp_path):
    result = appliance(
        "agent",
        "serve",
        "--hub",
        "http://127.0.0.1:9",
        "--zone",
        "ae-dxb",
        "--data-dir",
        str(tmp_path / "agent"),
    )
    assert result.returncode == 2
    assert "no trusted public key" in result.stderr and "Traceback" not in result.stderr


def test_agent_without_zone_names_the_missing_setting(tmp_path):
    result = appliance(
        "agent",
        "serve",
        "--hub",
        "http://127.0.0.1:9",
        "--data-dir",
        str(tmp_path / "agent"),
        env={"PATH": "/usr/bin"},
    )
    assert result.returncode == 2 and "zone" in result.stderr and "APPLIANCE_ZONE" in result.stderr
