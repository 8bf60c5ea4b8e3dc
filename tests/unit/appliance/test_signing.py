from __future__ import annotations

import json

import pytest

from appliance.errors import BundleFormatError, SignatureError
from appliance.security.keys import init_keypair
from appliance.security.signing import canonical_json, sign_document, verify_document

DOC = {"name": "fraud", "version": 3, "files": {"model.onnx": {"sha256": "ab", "length": 1}}}


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    return init_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def other_key(tmp_path_factory):
    return init_keypair(tmp_path_factory.mktemp("other-keys"))


def test_canonical_json_is_key_order_independent():
    a = {"b": 1, "a": {"d": [1, 2], "c": "é"}}
    b = {"a": {"c": "é", "d": [1, 2]}, "b": 1}
    assert canonical_json(a) == canonical_json(b)
    assert canonical_json(a) == '{"a":{"c":"é","d":[1,2]},"b":1}'.encode()


def test_canonical_json_refuses_nan():
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_sign_verify_roundtrip(key):
    envelope = sign_document(DOC, key)
    assert verify_document(envelope, [key.public]) == DOC


def test_verify_accepts_any_one_trusted_key(key, other_key):
    envelope = sign_document(DOC, key)
    assert verify_document(envelope, [other_key.public, key.public]) == DOC


def test_reformatted_envelope_still_verifies(key):
    envelope = json.loads(sign_document(DOC, key))
    compact = json.dumps(envelope, separators=(",", ":"), sort_keys=False).encode()
    assert verify_document(compact, [key.public]) == DOC


def test_altered_payload_is_rejected(key):
    envelope = json.loads(sign_document(DOC, key))
    envelope["signed"]["version"] = 4
    with pytest.raises(SignatureError, match="does not verify"):
        verify_document(json.dumps(envelope).encode(), [key.public])


def test_garbled_signature_is_rejected(key):
    envelope = json.loads(sign_document(DOC, key))
    envelope["signatures"][0]["sig"] = "zz" + envelope["signatures"][0]["sig"][2:]
    with pytest.raises(SignatureError):
        verify_document(json.dumps(envelope).encode(), [key.public])


def test_signed_by_another_key_is_untrusted(key, other_key):
    envelope = sign_document(DOC, other_key)
    with pytest.raises(SignatureError) as info:
        verify_document(envelope, [key.public])
    assert "untrusted" in str(info.value)
    assert other_key.key_id[:16] in str(info.value)


def test_no_trusted_keys_at_all_is_untrusted(key):
    with pytest.raises(SignatureError, match="untrusted"):
        verify_document(sign_document(DOC, key), [])


@pytest.mark.parametrize("signatures", [[], None, "abc", [1, "x"]])
def test_missing_signatures_are_rejected(signatures):
    envelope: dict[str, object] = {"signed": DOC}
    if signatures is not None:
        envelope["signatures"] = signatures
    with pytest.raises(SignatureError):
        verify_document(json.dumps(envelope).encode(), [])


@pytest.mark.parametrize("data", [b"", b"not json", b'{"signed": ', b"\xff\xfe\x00garbage"])
def test_not_json_is_a_format_error(key, data):
    with pytest.raises(BundleFormatError):
        verify_document(data, [key.public])


@pytest.mark.parametrize("doc", [[], {"signatures": []}, {"signed": "x", "signatures": []}])
def test_envelope_without_signed_object_is_a_format_error(key, doc):
    with pytest.raises(BundleFormatError):
        verify_document(json.dumps(doc).encode(), [key.public])
