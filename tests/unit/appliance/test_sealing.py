from __future__ import annotations

import base64
import os
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from appliance.errors import ConfigError, DecryptionError, IntegrityError, InvalidInputError
from appliance.security.sealing import (
    HEADER_LENGTH,
    TAG_LENGTH,
    decrypt_file,
    encrypt_file,
    encrypted_length,
    init_encryption_key,
    load_public_pem,
    new_data_key,
    public_pem,
    unwrap_key,
    wrap_key,
)

SEG = 64
AAD = b"bundle:demo/1.0.0"


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _seal(tmp_path, plain: bytes, key: bytes, *, segment_size: int = SEG):
    src = tmp_path / "bundle.tar"
    src.write_bytes(plain)
    sealed = tmp_path / "bundle.tar.sealed"
    encrypt_file(src, sealed, key, AAD, segment_size=segment_size)
    return sealed


def _assert_refused(sealed, out, key: bytes, *, aad: bytes = AAD, max_bytes: int = 1 << 20):
    with pytest.raises(DecryptionError) as info:
        decrypt_file(sealed, out, key, aad, max_bytes=max_bytes)
    assert not out.exists()
    assert list(out.parent.glob(f".{out.name}.*")) == []  # no temporary file left behind
    return info.value


# ------------------------------------------------------------------ round trip


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG, 3 * SEG + 5])
def test_round_trip_restores_the_exact_bytes(tmp_path, size):
    plain = os.urandom(size)
    key = new_data_key()
    sealed = _seal(tmp_path, plain, key)
    assert sealed.stat().st_size == encrypted_length(size, SEG)
    assert len(plain) < 16 or plain not in sealed.read_bytes()  # short ones occur by chance
    out = tmp_path / "out" / "bundle.tar"
    assert decrypt_file(sealed, out, key, AAD, max_bytes=size) == size
    assert out.read_bytes() == plain
    assert _mode(out) == 0o600


def test_default_segment_size_round_trip(tmp_path):
    plain = os.urandom((4 << 20) + 123)
    key = new_data_key()
    sealed = _seal(tmp_path, plain, key, segment_size=4 << 20)
    assert sealed.stat().st_size == encrypted_length(len(plain))
    out = tmp_path / "plain.tar"
    assert decrypt_file(sealed, out, key, AAD, max_bytes=len(plain)) == len(plain)
    assert out.read_bytes() == plain


def test_encrypted_length_counts_one_tag_per_segment():
    assert encrypted_length(0, SEG) == HEADER_LENGTH + TAG_LENGTH
    assert encrypted_length(SEG, SEG) == HEADER_LENGTH + SEG + TAG_LENGTH
    assert encrypted_length(SEG + 1, SEG) == HEADER_LENGTH + SEG + 1 + 2 * TAG_LENGTH


def test_same_plaintext_seals_differently_each_time(tmp_path):
    key = new_data_key()
    first = _seal(tmp_path, b"x" * 100, key).read_bytes()
    second = _seal(tmp_path, b"x" * 100, key).read_bytes()
    assert first != second


def test_new_data_keys_are_32_random_bytes():
    assert len(new_data_key()) == 32
    assert new_data_key() != new_data_key()


# ------------------------------------------------------------------ tampering


@pytest.fixture
def sealed_file(tmp_path):
    key = new_data_key()
    plain = os.urandom(3 * SEG + 5)  # four segments: three full, one of 5 bytes
    return _seal(tmp_path, plain, key), key, tmp_path / "plain.tar"


def test_wrong_data_key_is_refused(sealed_file):
    sealed, _, out = sealed_file
    _assert_refused(sealed, out, new_data_key())


def test_wrong_aad_is_refused(sealed_file):
    sealed, key, out = sealed_file
    _assert_refused(sealed, out, key, aad=b"bundle:other/1.0.0")


CHUNK = SEG + TAG_LENGTH


@pytest.mark.parametrize(
    "offset",
    [
        0,  # magic
        9,  # segment size
        HEADER_LENGTH - 1,  # nonce prefix
        HEADER_LENGTH + CHUNK + 10,  # inside the second segment's ciphertext
        HEADER_LENGTH + 2 * CHUNK - 1,  # second segment's tag
        -1,  # final segment's tag
    ],
)
def test_any_flipped_byte_is_refused_and_leaves_no_output(sealed_file, offset):
    sealed, key, out = sealed_file
    data = bytearray(sealed.read_bytes())
    data[offset] ^= 0x01
    sealed.write_bytes(bytes(data))
    _assert_refused(sealed, out, key)


def test_a_failed_decrypt_keeps_an_existing_destination_untouched(sealed_file):
    sealed, key, out = sealed_file
    out.write_bytes(b"previous version")
    data = bytearray(sealed.read_bytes())
    data[-1] ^= 0x01
    sealed.write_bytes(bytes(data))
    with pytest.raises(DecryptionError):
        decrypt_file(sealed, out, key, AAD, max_bytes=1 << 20)
    assert out.read_bytes() == b"previous version"


def test_dropping_the_final_segment_is_refused(sealed_file):
    sealed, key, out = sealed_file
    data = sealed.read_bytes()
    sealed.write_bytes(data[: HEADER_LENGTH + 3 * CHUNK])
    _assert_refused(sealed, out, key)


def test_cutting_a_segment_short_is_refused(sealed_file):
    sealed, key, out = sealed_file
    sealed.write_bytes(sealed.read_bytes()[:-3])
    _assert_refused(sealed, out, key)


def test_header_only_is_refused(sealed_file):
    sealed, key, out = sealed_file
    sealed.write_bytes(sealed.read_bytes()[:HEADER_LENGTH])
    error = _assert_refused(sealed, out, key)
    assert "truncated" in error.message


def test_swapped_segments_are_refused(sealed_file):
    sealed, key, out = sealed_file
    data = sealed.read_bytes()
    first = data[HEADER_LENGTH : HEADER_LENGTH + CHUNK]
    second = data[HEADER_LENGTH + CHUNK : HEADER_LENGTH + 2 * CHUNK]
    rest = data[HEADER_LENGTH + 2 * CHUNK :]
    sealed.write_bytes(data[:HEADER_LENGTH] + second + first + rest)
    _assert_refused(sealed, out, key)


@pytest.mark.parametrize(
    "extra",
    [b"\x00", os.urandom(CHUNK), os.urandom(CHUNK + 7)],
    ids=["one byte", "a whole segment", "a segment and 7 bytes"],
)
def test_appended_bytes_are_refused(sealed_file, extra):
    sealed, key, out = sealed_file
    sealed.write_bytes(sealed.read_bytes() + extra)
    _assert_refused(sealed, out, key)


def test_appending_after_a_full_final_segment_is_refused(tmp_path):
    key = new_data_key()
    sealed = _seal(tmp_path, os.urandom(2 * SEG), key)
    out = tmp_path / "plain.tar"
    assert decrypt_file(sealed, out, key, AAD, max_bytes=2 * SEG) == 2 * SEG
    out.unlink()
    sealed.write_bytes(sealed.read_bytes() + os.urandom(TAG_LENGTH))
    _assert_refused(sealed, out, key)


def test_an_absurd_segment_size_in_the_header_is_refused(sealed_file):
    sealed, key, out = sealed_file
    data = bytearray(sealed.read_bytes())
    data[8:12] = (1 << 30).to_bytes(4, "big")
    sealed.write_bytes(bytes(data))
    error = _assert_refused(sealed, out, key)
    assert "segment size" in error.message


def test_a_file_that_is_not_sealed_is_refused(tmp_path):
    plain = tmp_path / "bundle.tar"
    plain.write_bytes(b"just a tar" * 10)
    error = _assert_refused(plain, tmp_path / "out.tar", new_data_key())
    assert "not a sealed file" in error.message


@pytest.mark.parametrize("max_bytes", [0, 3 * SEG, 3 * SEG + 4])
def test_more_plaintext_than_max_bytes_is_refused(sealed_file, max_bytes):
    sealed, key, out = sealed_file
    _assert_refused(sealed, out, key, max_bytes=max_bytes)


def test_decryption_errors_are_integrity_errors(sealed_file):
    sealed, _, out = sealed_file
    with pytest.raises(IntegrityError):
        decrypt_file(sealed, out, new_data_key(), AAD, max_bytes=1 << 20)


# ------------------------------------------------------------------ key wrapping


def test_wrapped_key_opens_with_the_right_private_key_and_context():
    agent = X25519PrivateKey.generate()
    data_key = new_data_key()
    wrapped = wrap_key(data_key, agent.public_key(), b"bundle-1|agent-a")
    assert set(wrapped) == {"alg", "epk", "nonce", "ct"}
    assert all(isinstance(value, str) for value in wrapped.values())
    assert base64.b64decode(wrapped["ct"]) != data_key
    assert unwrap_key(wrapped, agent, b"bundle-1|agent-a") == data_key


def test_wrapped_key_does_not_open_for_another_agent():
    agent, other = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    wrapped = wrap_key(new_data_key(), agent.public_key(), b"ctx")
    with pytest.raises(DecryptionError, match="not addressed to this device"):
        unwrap_key(wrapped, other, b"ctx")


def test_wrapped_key_does_not_open_under_another_context():
    agent = X25519PrivateKey.generate()
    wrapped = wrap_key(new_data_key(), agent.public_key(), b"bundle-1")
    with pytest.raises(DecryptionError):
        unwrap_key(wrapped, agent, b"bundle-2")


@pytest.mark.parametrize("field", ["epk", "nonce", "ct"])
def test_altered_wrapped_key_is_refused(field):
    agent = X25519PrivateKey.generate()
    wrapped = wrap_key(new_data_key(), agent.public_key(), b"ctx")
    raw = bytearray(base64.b64decode(wrapped[field]))
    raw[0] ^= 0x01
    with pytest.raises(DecryptionError):
        unwrap_key({**wrapped, field: base64.b64encode(raw).decode()}, agent, b"ctx")


@pytest.mark.parametrize(
    "change",
    [
        {"alg": "RSA-OAEP"},
        {"epk": "not base64!"},
        {"nonce": base64.b64encode(b"short").decode()},
        {"ct": None},
        {"epk": base64.b64encode(bytes(32)).decode()},  # a low-order point
    ],
)
def test_malformed_wrapped_key_is_a_decryption_error(change):
    agent = X25519PrivateKey.generate()
    wrapped = {**wrap_key(new_data_key(), agent.public_key(), b"ctx"), **change}
    with pytest.raises(DecryptionError):
        unwrap_key(wrapped, agent, b"ctx")


def test_each_wrap_uses_a_fresh_ephemeral_key():
    agent = X25519PrivateKey.generate()
    data_key = new_data_key()
    first = wrap_key(data_key, agent.public_key(), b"ctx")
    second = wrap_key(data_key, agent.public_key(), b"ctx")
    assert first["epk"] != second["epk"]
    assert first["ct"] != second["ct"]


# ------------------------------------------------------------------ key files


def test_init_creates_a_0600_key_in_a_0700_folder_and_reuses_it(tmp_path):
    folder = tmp_path / "keys"
    first = init_encryption_key(folder)
    assert _mode(folder) == 0o700
    assert _mode(folder / "encryption.x25519.key") == 0o600
    assert _mode(folder / "encryption.x25519.pub") == 0o644
    pem = (folder / "encryption.x25519.key").read_bytes()
    second = init_encryption_key(folder)
    assert (folder / "encryption.x25519.key").read_bytes() == pem
    raw = Encoding.Raw, PublicFormat.Raw
    assert second.public_key().public_bytes(*raw) == first.public_key().public_bytes(*raw)
    on_disk = load_public_pem((folder / "encryption.x25519.pub").read_text())
    assert on_disk.public_bytes(*raw) == first.public_key().public_bytes(*raw)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_init_refuses_a_key_file_readable_by_others(tmp_path, mode):
    folder = tmp_path / "keys"
    init_encryption_key(folder)
    os.chmod(folder / "encryption.x25519.key", mode)
    with pytest.raises(ConfigError) as info:
        init_encryption_key(folder)
    assert info.value.hint is not None and "chmod 600" in info.value.hint


def test_key_on_disk_opens_what_was_wrapped_to_its_public_pem(tmp_path):
    folder = tmp_path / "keys"
    init_encryption_key(folder)
    recipient = load_public_pem((folder / "encryption.x25519.pub").read_text())
    data_key = new_data_key()
    wrapped = wrap_key(data_key, recipient, b"ctx")
    assert unwrap_key(wrapped, init_encryption_key(folder), b"ctx") == data_key


def test_public_pem_round_trips():
    public = X25519PrivateKey.generate().public_key()
    text = public_pem(public)
    assert text.startswith("-----BEGIN PUBLIC KEY-----")
    raw = Encoding.Raw, PublicFormat.Raw
    assert load_public_pem(text).public_bytes(*raw) == public.public_bytes(*raw)


def test_load_public_pem_refuses_garbage_and_other_key_types():
    with pytest.raises(InvalidInputError, match="encryption_key"):
        load_public_pem("not a key")
    ed25519 = Ed25519PrivateKey.generate().public_key()
    pem = ed25519.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    with pytest.raises(InvalidInputError, match="X25519"):
        load_public_pem(pem)


def test_fallback_without_encrypt_into_reads_the_same_format(tmp_path, monkeypatch):
    plain = os.urandom(3 * SEG + 5)
    key = new_data_key()
    fast = _seal(tmp_path, plain, key)
    monkeypatch.setattr("appliance.security.sealing._HAS_INTO", False)
    out = tmp_path / "plain.tar"
    assert decrypt_file(fast, out, key, AAD, max_bytes=len(plain)) == len(plain)
    assert out.read_bytes() == plain
    slow = tmp_path / "slow.sealed"
    encrypt_file(tmp_path / "bundle.tar", slow, key, AAD, segment_size=SEG)
    monkeypatch.setattr("appliance.security.sealing._HAS_INTO", True)
    out.unlink()
    assert decrypt_file(slow, out, key, AAD, max_bytes=len(plain)) == len(plain)
    assert out.read_bytes() == plain


def test_max_bytes_is_enforced_while_streaming_not_only_from_the_file_size(
    sealed_file, monkeypatch
):
    # As if the file grew after its size was checked: the per-segment guard must still hold.
    sealed, key, out = sealed_file
    monkeypatch.setattr("appliance.security.sealing.encrypted_length", lambda *_args: 1 << 40)
    error = _assert_refused(sealed, out, key, max_bytes=SEG + 1)
    assert "max_bytes" in error.message
