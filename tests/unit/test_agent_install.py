"""Installing bundles on an agent: all or nothing, last good kept, restored after restart."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest

from agent.installer import InstallPolicy, install_archive, restore_installed
from agent.repository import ModelRepository
from agent.runtime import load_runtime, pick_runtime
from agent.store import BundleStore
from appliance.bundle import check_test_vectors, pack
from appliance.errors import IntegrityError, ModelLoadError, NotFoundError, SignatureError
from appliance.keys import init_keypair
from appliance.manifest import Lineage
from hub.registry import bundler
from tests.conftest import make_reference_npy, make_tiny_onnx


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    return init_keypair(tmp_path_factory.mktemp("agent-keys"))


def _archive(root: Path, key, version: int) -> Path:
    folder = root / f"b{version}"
    folder.mkdir(parents=True)
    prepared = bundler.prepare(folder, make_tiny_onnx(), make_reference_npy())
    bundler.seal(prepared, name="tiny", version=version, metrics={}, lineage=Lineage(), key=key)
    out = root / f"tiny-{version}.tar"
    pack(folder, out)
    return out


@pytest.fixture(scope="module")
def archives(tmp_path_factory, key) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("archives")
    return {v: _archive(root, key, v) for v in (1, 2, 3)}


@pytest.fixture
def policy(key) -> InstallPolicy:
    return InstallPolicy(trusted_keys=(key.public,), runtime="onnxruntime", threads=1)


def _tamper(archive: Path, tmp_path: Path) -> Path:
    data = bytearray(archive.read_bytes())
    with tarfile.open(archive) as tar:
        offset = tar.getmember("model.onnx").offset_data
    data[offset + 40] ^= 0x01
    bad = tmp_path / "tampered.tar"
    bad.write_bytes(bytes(data))
    return bad


def test_install_serves_the_new_model_and_records_it(tmp_path, archives, policy):
    store, repo = BundleStore(tmp_path / "agent"), ModelRepository()
    model = install_archive(archives[1], store, repo, policy)
    assert (model.name, model.version) == ("tiny", 1)
    assert repo.get("tiny").version == 1
    assert store.current() == {"tiny": 1}
    assert (store.path("tiny", 1) / "model.onnx").is_file()
    assert list(store.staging.iterdir()) == []


def test_tampered_bundle_changes_nothing(tmp_path, archives, policy):
    store, repo = BundleStore(tmp_path / "agent"), ModelRepository()
    install_archive(archives[1], store, repo, policy)
    with pytest.raises(IntegrityError, match=r"model\.onnx"):
        install_archive(_tamper(archives[2], tmp_path), store, repo, policy)
    assert repo.get("tiny").version == 1
    assert store.current() == {"tiny": 1}
    assert not store.path("tiny", 2).exists()
    assert list(store.staging.iterdir()) == []


def test_bundle_from_an_untrusted_key_changes_nothing(tmp_path, archives, policy):
    stranger = init_keypair(tmp_path / "stranger")
    store, repo = BundleStore(tmp_path / "agent"), ModelRepository()
    foreign = InstallPolicy(trusted_keys=(stranger.public,), runtime="onnxruntime", threads=1)
    with pytest.raises(SignatureError):
        install_archive(archives[1], store, repo, foreign)
    with pytest.raises(NotFoundError):
        repo.get("tiny")
    assert store.current() == {}


def test_keeps_current_and_previous_versions_only(tmp_path, archives, policy):
    store, repo = BundleStore(tmp_path / "agent"), ModelRepository()
    for version in (1, 2, 3):
        install_archive(archives[version], store, repo, policy)
    assert store.current() == {"tiny": 3} and store.previous() == {"tiny": 2}
    assert sorted(p.name for p in (store.bundles / "tiny").iterdir()) == ["2", "3"]


def test_restart_restores_the_current_model_from_disk(tmp_path, archives, policy):
    store = BundleStore(tmp_path / "agent")
    install_archive(archives[1], store, ModelRepository(), policy)
    repo = ModelRepository()
    restored = restore_installed(BundleStore(tmp_path / "agent"), repo, policy)
    assert [(m.name, m.version) for m in restored] == [("tiny", 1)]
    assert repo.get("tiny", 1).runtime.kind == "onnxruntime"


def test_restart_falls_back_to_previous_when_current_is_damaged_on_disk(tmp_path, archives, policy):
    store, repo = BundleStore(tmp_path / "agent"), ModelRepository()
    install_archive(archives[1], store, repo, policy)
    install_archive(archives[2], store, repo, policy)
    (store.path("tiny", 2) / "model.onnx").write_bytes(b"rotten")
    fresh = ModelRepository()
    restore_installed(BundleStore(tmp_path / "agent"), fresh, policy)
    assert fresh.get("tiny").version == 1


def test_interrupted_install_leftovers_are_cleared_at_start(tmp_path):
    store = BundleStore(tmp_path / "agent")
    (store.new_staging_dir() / "half.tar").write_bytes(b"partial")
    assert list(BundleStore(tmp_path / "agent").staging.iterdir()) == []


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_both_runtimes_pass_the_bundle_test_vectors(tmp_path, key, runtime):
    folder = tmp_path / "b"
    folder.mkdir()
    prepared = bundler.prepare(folder, make_tiny_onnx(), make_reference_npy())
    manifest = bundler.seal(
        prepared, name="tiny", version=1, metrics={}, lineage=Lineage(), key=key
    )
    loaded = load_runtime(folder, manifest, runtime, threads=1)  # type: ignore[arg-type]
    assert loaded.kind == runtime
    assert check_test_vectors(folder, manifest, loaded.infer) == 2
    out = loaded.infer({"input": np.zeros((3, 4), np.float32)})["probabilities"]
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_openvino_is_refused_for_a_bundle_without_ir(tmp_path, key, monkeypatch):
    folder = tmp_path / "b"
    folder.mkdir()
    monkeypatch.setattr(bundler, "_convert_to_openvino", lambda _folder: False)
    prepared = bundler.prepare(folder, make_tiny_onnx(), None)
    manifest = bundler.seal(
        prepared, name="tiny", version=1, metrics={}, lineage=Lineage(), key=key
    )
    assert not manifest.has_openvino_ir
    assert pick_runtime("auto", manifest) == "onnxruntime"
    with pytest.raises(ModelLoadError, match="no OpenVINO IR"):
        pick_runtime("openvino", manifest)
