"""Issue 16: ``appliance demo`` leaves no process behind, whatever stops it: SIGTERM (a
supervisor, ``timeout``, a CI runner), SIGINT, SIGHUP (a closed terminal), and SIGKILL,
after which it runs no clean-up and the kernel stops its children (PR_SET_PDEATHSIG).

Its hub and agents run in sessions of their own, so a signal sent to the demo's process
alone, as these tests send it, reaches them only through the demo."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.cli.demo.processes import hub_process, wait_for
from appliance.cli.demo.site import bootstrap_site

DEADLINE_S = 60.0
"""How long a condition may take on a loaded box; the tests wait for conditions, not time."""


def _started_by(marker: str, not_pid: int) -> set[int]:
    """Processes whose command line names ``marker`` (the demo's data directory)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == not_pid:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.add(int(entry.name))
    return found


def _as_in_a_terminal() -> None:
    """The signals a command started in a terminal has: a suite started in the background
    (``nohup make test &``) passes SIGINT, SIGQUIT and SIGHUP on ignored, and a Python
    started so keeps ignoring Ctrl-C, as a background job should (seen: the demo ran on
    to the end and exited 0)."""
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL], ids=lambda s: s.name
)
def test_the_demo_leaves_no_process_behind(tmp_path: Path, sig: signal.Signals) -> None:
    data_dir = tmp_path / "demo"
    demo = subprocess.Popen(
        [sys.executable, "-m", "appliance", "demo", "--data-dir", str(data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # like a service of its own; the test signals its pid alone
        preexec_fn=_as_in_a_terminal,
    )
    marker = str(data_dir)
    try:
        # the hub and both agents are up: three processes started for this data directory
        wait_for(
            "the hub and two agents", lambda: len(_started_by(marker, demo.pid)) >= 3, DEADLINE_S
        )

        demo.send_signal(sig)

        wait_for("the demo to exit", lambda: demo.poll() is not None, DEADLINE_S)
        wait_for("its processes to end", lambda: not _started_by(marker, demo.pid), DEADLINE_S)
    finally:
        for pid in _started_by(marker, demo.pid):  # only if the test failed
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if demo.poll() is None:
            demo.kill()
        demo.wait()
    if sig is not signal.SIGKILL:
        assert demo.returncode == 130  # stopped as asked, not crashed
        assert b"Traceback" not in (demo.stderr.read() if demo.stderr else b"")


def test_a_hub_with_an_idle_client_over_tls_stops_without_waiting_for_it(tmp_path: Path) -> None:
    """Found timing the suite: on SIGTERM uvicorn closed each idle keep-alive connection
    and, over TLS, waited for the client's close_notify, which a client idle in its pool
    never sends; each stop of a hub with a client connected (agents keep theirs) took the
    whole graceful timeout, 10 s, and logged that it was exceeded."""
    site = bootstrap_site(tmp_path / "site", tls=True)
    hub = hub_process(site.hub_dir, tls=site.tls)
    hub.start()
    try:
        hub.wait_healthy()
        with site.client(hub.url, "admin") as admin:
            admin.create_enrolment_token("ae-dxb")  # its connection stays open, idle
            hub.send_signal(signal.SIGTERM)
            assert hub.process is not None
            hub.process.wait(DEADLINE_S)
    finally:
        hub.stop()
    log = hub.log_path.read_text()
    assert "audit checkpoint signed" in log  # it shut down in order, as it does idle
    assert "timeout graceful shutdown exceeded" not in log
