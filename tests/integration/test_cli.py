"""The command line as an operator uses it: clear output, clear errors, no tracebacks."""

from __future__ import annotations

import io
import os
import stat
import zipfile

import numpy as np
import pytest

from tests.harness import formats
from tests.harness.cli import appliance
from tests.harness.models import make_picky_onnx, make_tiny_onnx

pytestmark = pytest.mark.integration


@pytest.fixture
def session_env(tmp_path):
    return {**os.environ, "APPLIANCE_SESSION_FILE": str(tmp_path / "session.json")}


def login(hub, site, env, username):
    result = appliance(
        "login",
        "--hub",
        hub.url,
        "--username",
        username,
        "--password-stdin",
        env=env,
        stdin=site.passwords[username] + "\n",
    )
    assert result.returncode == 0, result.stderr
    return result


def test_login_import_list_and_promote_against_a_real_hub(hub, site, tmp_path, session_env):
    signed_in = login(hub, site, session_env, "alice")
    assert "signed in" in signed_in.stdout
    session = tmp_path / "session.json"
    assert stat.S_IMODE(session.stat().st_mode) == 0o600
    model = tmp_path / "m.onnx"
    model.write_bytes(make_tiny_onnx())
    imported = appliance(
        "model",
        "import",
        str(model),
        "--name",
        "cli-model",
        "--metrics",
        '{"accuracy": 0.91}',
        env=session_env,
    )
    assert imported.returncode == 0, imported.stderr
    assert "cli-model" in imported.stdout and "candidate" in imported.stdout
    listed = appliance("model", "list", env=session_env)
    assert listed.returncode == 0 and "cli-model" in listed.stdout and "0.9100" in listed.stdout
    illegal = appliance("model", "promote", "cli-model", "1", "production", env=session_env)
    assert illegal.returncode == 2
    assert "needs models:approve" in illegal.stderr and "Traceback" not in illegal.stderr
    assert (
        appliance("model", "promote", "cli-model", "1", "staging", env=session_env).returncode == 0
    )
    login(hub, site, session_env, "omar")
    approved = appliance("model", "promote", "cli-model", "1", "production", env=session_env)
    assert approved.returncode == 0 and "production" in approved.stdout


def test_wrong_password_and_no_session_are_explained(hub, tmp_path, session_env):
    wrong = appliance(
        "login",
        "--hub",
        hub.url,
        "--username",
        "alice",
        "--password-stdin",
        env=session_env,
        stdin="not-the-password\n",
    )
    assert wrong.returncode == 2 and "wrong username or password" in wrong.stderr
    no_session = appliance("model", "list", "--hub", hub.url, env=session_env)
    assert no_session.returncode == 2 and "appliance login" in no_session.stderr


def test_unreachable_hub_and_missing_file_are_explained(tmp_path, session_env):
    down = appliance(
        "login",
        "--hub",
        "http://127.0.0.1:9",
        "--username",
        "x",
        "--password-stdin",
        env=session_env,
        stdin="pw\n",
    )
    assert down.returncode == 2 and "unreachable" in down.stderr and "Traceback" not in down.stderr
    missing = appliance(
        "model",
        "import",
        str(tmp_path / "nope.onnx"),
        "--name",
        "x",
        "--hub",
        "http://127.0.0.1:9",
        env=session_env,
    )
    assert missing.returncode == 2


def test_keys_init_writes_owner_only_key_and_reuses_it(tmp_path):
    first = appliance("keys", "init", "--data-dir", str(tmp_path / "d"))
    assert first.returncode == 0 and "created" in first.stdout
    key = tmp_path / "d" / "keys" / "signing.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = key.read_bytes()
    again = appliance("keys", "init", "--data-dir", str(tmp_path / "d"))
    assert "kept existing" in again.stdout and key.read_bytes() == before


def test_agent_that_is_not_enrolled_says_how_to_enrol(tmp_path):
    result = appliance(
        "agent", "serve", "--hub", "http://127.0.0.1:9", "--data-dir", str(tmp_path / "agent")
    )
    assert result.returncode == 2
    assert "not enrolled" in result.stderr and "--enrol-token" in result.stderr


def test_agent_serve_refuses_a_worker_count_it_cannot_use(tmp_path):
    result = appliance(
        "agent",
        "serve",
        "--workers",
        "0",
        "--hub",
        "http://127.0.0.1:9",
        "--data-dir",
        str(tmp_path / "agent"),
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--workers 0: must be between 1 and 64" in result.stderr


def test_rotating_the_token_key_keeps_the_previous_ones_for_verification(tmp_path):
    data = tmp_path / "hub"
    kids = []
    for _ in range(4):
        result = appliance("keys", "rotate-token-key", "--data-dir", str(data))
        assert result.returncode == 0, result.stderr
        kids.append((data / "keys" / "jwt" / "current").read_text())
    assert len(set(kids)) == 4
    kept = sorted(p.stem for p in (data / "keys" / "jwt").glob("*.key"))
    assert kids[-1] in kept and len(kept) == 3


def test_import_of_a_model_that_needs_samples_says_so_and_takes_them(
    hub, site, tmp_path, session_env
):
    """Issue 15: the error names the runtime's reason and '--sample'; with it, it imports."""
    login(hub, site, session_env, "alice")
    model = tmp_path / "picky.onnx"
    model.write_bytes(make_picky_onnx())
    refused = appliance("model", "import", str(model), "--name", "picky-cli", env=session_env)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "could not run it on probe inputs" in refused.stderr
    assert "--sample" in refused.stderr
    sample = tmp_path / "inputs.npz"
    np.savez(sample, ids=np.array([-5, -5]))
    imported = appliance(
        "model",
        "import",
        str(model),
        "--name",
        "picky-cli",
        "--sample",
        str(sample),
        env=session_env,
    )
    assert imported.returncode == 0, imported.stderr
    assert "picky-cli" in imported.stdout


def test_import_converts_pickles_here_and_sends_the_hub_onnx(hub, site, tmp_path, session_env):
    """Issue 15: a joblib file and an MLflow pytorch directory (a torch.save pickle) are
    converted to ONNX on the uploader's machine; the hub, which refuses pickles, gets ONNX."""
    login(hub, site, session_env, "alice")
    pickled = tmp_path / "forest.joblib"
    pickled.write_bytes(formats.joblib_bytes(formats.sklearn_classifier("forest")))
    directory = tmp_path / "mlflow-model"
    with zipfile.ZipFile(io.BytesIO(_mlflow_pytorch())) as archive:
        archive.extractall(directory)
    for name, path in (("forest-cli", pickled), ("heads-cli", directory / "model")):
        imported = appliance("model", "import", str(path), "--name", name, env=session_env)
        assert imported.returncode == 0, imported.stderr
        assert "to ONNX on this machine" in imported.stdout
        assert f"{name} version 1 is candidate" in " ".join(imported.stdout.split())


def _mlflow_pytorch() -> bytes:
    return formats.mlflow_zip(
        "pytorch",
        {"data/model.pth": formats.torch_save_bytes(formats.TwoHeads())},
        formats.tensor_signature(("x", "float32", [-1, 4]), ("scale", "float32", [-1, 1])),
    )


def test_import_of_a_model_folder_with_external_weights(hub, site, tmp_path, session_env):
    login(hub, site, session_env, "alice")
    with zipfile.ZipFile(io.BytesIO(formats.external_data_zip(make_tiny_onnx()))) as archive:
        archive.extractall(tmp_path)
    imported = appliance(
        "model", "import", str(tmp_path / "model"), "--name", "folder-cli", env=session_env
    )
    assert imported.returncode == 0, imported.stderr
    assert "folder-cli version 1 is candidate" in " ".join(imported.stdout.split())
