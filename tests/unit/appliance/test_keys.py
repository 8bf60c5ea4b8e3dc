from __future__ import annotations

import hashlib
import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization

from appliance.errors import ConfigError
from appliance.security.keys import init_keypair, load_keypair, load_public_key


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_creates_private_key_0600_in_0700_folder_and_public_0644(tmp_path):
    folder = tmp_path / "keys"
    init_keypair(folder)
    assert _mode(folder) == 0o700
    assert _mode(folder / "signing.key") == 0o600
    assert _mode(folder / "signing.pub") == 0o644
    assert (folder / "signing.key").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert (folder / "signing.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")


def test_init_tightens_an_existing_open_folder(tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    init_keypair(folder)
    assert _mode(folder) == 0o700


def test_modes_do_not_depend_on_umask(tmp_path):
    old = os.umask(0o077)
    try:
        init_keypair(tmp_path / "keys")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "keys" / "signing.pub") == 0o644


def test_rerunning_init_reuses_the_same_key(tmp_path):
    folder = tmp_path / "keys"
    first = init_keypair(folder)
    pem = (folder / "signing.key").read_bytes()
    second = init_keypair(folder)
    assert second.key_id == first.key_id
    assert (folder / "signing.key").read_bytes() == pem


def test_force_replaces_the_key(tmp_path):
    folder = tmp_path / "keys"
    first = init_keypair(folder)
    second = init_keypair(folder, force=True)
    assert second.key_id != first.key_id
    assert load_keypair(folder).key_id == second.key_id


def test_load_returns_the_created_key_and_public_file_matches(tmp_path):
    folder = tmp_path / "keys"
    created = init_keypair(folder)
    assert load_keypair(folder).key_id == created.key_id
    public = load_public_key(folder / "signing.pub")
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert created.key_id == hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_load_refuses_key_readable_by_others(tmp_path, mode):
    folder = tmp_path / "keys"
    init_keypair(folder)
    os.chmod(folder / "signing.key", mode)
    with pytest.raises(ConfigError) as info:
        load_keypair(folder)
    assert "readable by others" in info.value.message
    assert info.value.hint is not None and "chmod 600" in info.value.hint


def test_init_refuses_to_reuse_an_exposed_key(tmp_path):
    folder = tmp_path / "keys"
    init_keypair(folder)
    os.chmod(folder / "signing.key", 0o644)
    with pytest.raises(ConfigError):
        init_keypair(folder)


def test_missing_key_hints_at_keys_init(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_keypair(tmp_path / "nowhere")
    assert info.value.hint is not None
    assert "appliance keys init" in info.value.hint
    assert "appliance keys init" in str(info.value)


def test_garbage_key_file_is_a_config_error(tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir()
    (folder / "signing.key").write_bytes(b"not a key")
    os.chmod(folder / "signing.key", 0o600)
    with pytest.raises(ConfigError, match="not a PEM private key"):
        load_keypair(folder)


def test_missing_public_key_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_public_key(tmp_path / "trusted-hub.pub")
    assert info.value.hint is not None and "--trusted-key" in info.value.hint


def test_a_public_key_whose_private_key_is_lost_is_refused_not_replaced(tmp_path):
    """A lost signing.key (a partial restore, a wrong rm) must not become a new pair that
    agents and signed records no longer match."""
    folder = tmp_path / "keys"
    first = init_keypair(folder)
    public = (folder / "signing.pub").read_bytes()
    (folder / "signing.key").unlink()
    with pytest.raises(ConfigError, match=r"private key signing\.key is not") as refused:
        init_keypair(folder)
    assert "restore" in (refused.value.hint or "")
    assert (folder / "signing.pub").read_bytes() == public
    assert not (folder / "signing.key").exists()
    assert init_keypair(folder, force=True).key_id != first.key_id  # on purpose, it may
