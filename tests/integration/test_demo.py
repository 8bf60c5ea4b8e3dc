"""The README's main command, run as a user would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_refuses_a_data_dir_that_is_not_empty(tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "demo", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "not empty" in result.stderr
    assert (tmp_path / "keep.txt").read_text() == "precious"


def test_demo_runs_the_whole_loop_prints_the_summary_scripts_read_and_agents_answer_with_the_key(
    tmp_path,
):
    """'appliance demo --serve' runs the README's whole loop (what 'appliance demo' runs
    before it exits: not run again here, to spare the suite a second demo) with no failed
    request; then prints hub URL, each agent's URL, site CA, the inference key and the demo
    users, one per line; then an agent answers over HTTPS with that key only."""
    import re

    import httpx

    from appliance.security.tls import client_ssl_context

    process = subprocess.Popen(
        [sys.executable, "-m", "appliance", "demo", "--serve", "--data-dir", str(tmp_path / "d")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:  # ends when the demo does; it stays up once served
            lines.append(line.rstrip("\n"))
            if line.lstrip().startswith("sign in: appliance login"):
                break
        text = "\n".join(lines)
        assert process.poll() is None, text[-3000:]
        assert not [line for line in lines if "✗" in line], text[-3000:]
        assert "PASS" in text and "failures = 0" in text, text[-3000:]
        assert "both agents on v2: True" in text and "1 → 2" in text, text[-3000:]
        hub = re.search(r"^  hub    (https://\S+)", text, re.M)
        agents = re.findall(r"^  (agent-\S+)  (https://\S+)", text, re.M)
        ca = re.search(r"^  site CA (\S+)", text, re.M)
        key = re.search(r"^  inference key  (ak_\S+)$", text, re.M)
        assert hub and ca and key and len(agents) == 2, text[-2000:]
        assert sum(1 for line in lines if "inference key" in line) == 1
        for user in ("admin", "alice", "omar", "fatima", "sara", "gpu01"):
            assert re.search(rf"^    {user}\s", text, re.M), user
        url = f"{agents[0][1]}/v2/models/breast-cancer/infer"
        body = {
            "inputs": [{"name": "input", "shape": [1, 30], "datatype": "FP32", "data": [0.5] * 30}]
        }
        pinned = client_ssl_context(Path(ca.group(1)))
        headers = {"authorization": f"Bearer {key.group(1)}"}
        assert httpx.post(url, json=body, headers=headers, verify=pinned, timeout=10).is_success
        assert httpx.post(url, json=body, verify=pinned, timeout=10).status_code == 401
    finally:
        process.terminate()  # the demo stops its hub and agents on SIGTERM, as on Ctrl-C
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    data_dir = str(tmp_path / "d")
    left = subprocess.run(["pgrep", "-f", data_dir], capture_output=True, text=True).stdout
    assert left.strip() == "", f"processes of the demo still running: {left}"
