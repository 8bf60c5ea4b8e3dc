"""``appliance doctor``: each check on a real host, data directory and (loopback) hub."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from appliance.cli.demo.processes import free_port
from appliance.cli.doctor import (
    FAIL_FREE_BYTES,
    REQUIREMENTS,
    WARN_FREE_BYTES,
    DoctorOptions,
    Requirement,
    check_certificates,
    check_clock,
    check_disk,
    check_gpu,
    check_hub,
    check_import,
    check_key_permissions,
    check_python,
    check_skew,
    disk_status,
    run_checks,
    worst,
)
from appliance.cli.main import main
from appliance.security.keys import init_keypair, keys_dir
from appliance.security.tls import ca_dir, init_ca, issue_server_cert, tls_dir

NOW = datetime.now(UTC).replace(microsecond=0)  # as a Date header has it


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory as the hub leaves it: signing key, site CA, server certificate."""
    folder = tmp_path / "hub"
    init_keypair(keys_dir(folder))
    issue_server_cert(init_ca(ca_dir(folder)), tls_dir(folder), "hub")
    return folder


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)  # sends a Date header
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hub_url() -> Iterator[str]:
    """A real HTTP server on loopback that answers ``/health`` as the hub does."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_healthy_agent_host_passes_every_check(data_dir: Path, hub_url: str) -> None:
    results = run_checks(DoctorOptions(role="agent", data_dir=data_dir, hub_url=hub_url))
    names = {r.name for r in results}
    assert {"python", "import onnxruntime", "key permissions", "hub reachable"} <= names
    assert {"clock vs hub", "GPU", "certificate tls/hub.crt", "certificate ca/ca.crt"} <= names
    assert worst(results) == "ok", [r for r in results if r.status != "ok"]


def test_a_private_key_readable_by_others_fails_with_a_chmod_hint(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loose = keys_dir(data_dir) / "signing.key"
    loose.chmod(0o644)
    result = check_key_permissions(data_dir)
    assert result.status == "fail" and f"{loose} (644)" in result.detail
    assert result.hint == f"chmod 600 {loose}"
    assert main(["doctor", "--role", "agent", "--data-dir", str(data_dir)]) == 1
    assert "chmod 600" in capsys.readouterr().out


def test_an_unreachable_hub_fails_with_a_hint() -> None:
    (result,) = check_hub(f"http://127.0.0.1:{free_port()}", None, "agent")
    assert result.status == "fail" and "cannot reach" in result.detail
    assert "is the hub running" in result.hint
    (missing_ca,) = check_hub("https://127.0.0.1:1", Path("/nonexistent/ca.crt"), "agent")
    assert missing_ca.status == "fail" and missing_ca.hint
    (no_url,) = check_hub(None, None, "worker")
    assert no_url.status == "warn" and "--hub" in no_url.hint
    assert check_hub(None, None, "hub")[0].status == "skip"


def test_disk_thresholds() -> None:
    assert disk_status(FAIL_FREE_BYTES - 1) == "fail"
    assert disk_status(FAIL_FREE_BYTES) == "warn"
    assert disk_status(WARN_FREE_BYTES - 1) == "warn"
    assert disk_status(WARN_FREE_BYTES) == "ok"


def test_free_disk_is_read_for_a_folder_that_does_not_exist_yet(tmp_path: Path) -> None:
    result = check_disk(tmp_path / "not" / "yet")
    assert "GiB free at" in result.detail and str(tmp_path) in result.detail


def test_the_clock_and_the_skew_against_the_hub() -> None:
    assert check_clock(datetime(2020, 1, 1, tzinfo=UTC)).status == "fail"
    assert check_clock(NOW).status == "ok"
    assert check_skew(format_datetime(NOW, usegmt=True), NOW).status == "ok"
    ahead = check_skew(format_datetime(NOW + timedelta(minutes=2), usegmt=True), NOW)
    assert ahead.status == "warn" and "120 s ahead" in ahead.detail and ahead.hint
    assert check_skew(None, NOW).status == "skip"


def test_certificates_warn_before_they_expire_and_fail_after(data_dir: Path) -> None:
    soon = NOW + timedelta(days=397 - 10)
    by_name = {r.name: r for r in check_certificates(data_dir, soon)}
    assert by_name["certificate tls/hub.crt"].status == "warn"
    assert "appliance ca issue-server --name hub" in by_name["certificate tls/hub.crt"].hint
    assert by_name["certificate ca/ca.crt"].status == "ok"
    later = {r.name: r for r in check_certificates(data_dir, NOW + timedelta(days=400))}
    assert later["certificate tls/hub.crt"].status == "fail"
    assert "expired" in later["certificate tls/hub.crt"].detail


def test_missing_packages_python_and_gpu_by_role() -> None:
    needed = check_import(Requirement("no_such_module_for_doctor"), "agent")
    assert needed.status == "fail" and needed.hint == "pip install -e '.[agent]'"
    optional = check_import(Requirement("no_such_module_for_doctor", needed=False), "hub")
    assert optional.status == "warn"
    assert check_python((3, 12, 1)).status == "fail"
    assert check_python((3, 11, 9)).status == "ok"
    assert check_gpu("worker", names=[]).status == "warn"
    assert check_gpu("agent", names=[]).status == "ok"


def test_an_agent_without_grpcio_refuses_to_start_and_says_how_to_go_on(monkeypatch) -> None:
    """Issue 15: a missing grpcio was a traceback at start; now the two ways out are named,
    and doctor lists grpc among the agent's imports."""
    import sys

    from appliance.cli.serve import _agent_grpc
    from appliance.errors import ConfigError
    from appliance.settings import AgentSettings, GrpcSettings

    monkeypatch.setitem(sys.modules, "agent.grpc_front", None)  # import fails as if absent
    with pytest.raises(ConfigError) as refused:
        _agent_grpc(None, AgentSettings(hub_url="", grpc=GrpcSettings(port=8702)), {})
    assert "grpcio" in refused.value.message and "APPLIANCE_GRPC_PORT=0" in (
        refused.value.hint or ""
    )
    assert _agent_grpc(None, AgentSettings(hub_url="", grpc=GrpcSettings(port=0)), {}) is None
    assert "grpc" in [r.module for r in REQUIREMENTS["agent"]]
