"""Installing a bundle: unpack, verify, load, test, then swap — or change nothing.

Each step can refuse the bundle; until the last one nothing the agent serves
or remembers has changed, so a bad bundle leaves the last good model serving.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.repository import LoadedModel, ModelRepository
from agent.runtime import load_runtime
from agent.store import BundleStore
from appliance.bundle import check_test_vectors, unpack, verify_bundle
from appliance.errors import ApplianceError
from appliance.manifest import Manifest
from appliance.settings import RuntimeChoice

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InstallPolicy:
    trusted_keys: tuple[Ed25519PublicKey, ...]
    runtime: RuntimeChoice
    threads: int
    max_bundle_bytes: int = 2 << 30


def _load_verified(folder: Path, policy: InstallPolicy) -> LoadedModel:
    manifest: Manifest = verify_bundle(folder, policy.trusted_keys)
    runtime = load_runtime(folder, manifest, policy.runtime, policy.threads)
    checked = check_test_vectors(folder, manifest, runtime.infer)
    log.info(
        "%s v%s verified and passed %d test vectors on %s",
        manifest.name,
        manifest.version,
        checked,
        runtime.kind,
    )
    return LoadedModel(manifest=manifest, runtime=runtime, folder=folder)


def install_archive(
    archive: Path, store: BundleStore, repository: ModelRepository, policy: InstallPolicy
) -> LoadedModel:
    """Install a bundle tar; on any refusal raise and leave everything as it was."""
    staged = store.new_staging_dir()
    try:
        unpack(archive, staged, max_bytes=policy.max_bundle_bytes)
        candidate = _load_verified(staged, policy)
        final = store.place(staged, candidate.name, candidate.version)
        model = LoadedModel(manifest=candidate.manifest, runtime=candidate.runtime, folder=final)
        repository.swap(model)
        store.mark_current(model.name, model.version)
        return model
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def restore_installed(
    store: BundleStore, repository: ModelRepository, policy: InstallPolicy
) -> list[LoadedModel]:
    """At start-up, serve the last good bundle of each model, re-verified from disk."""
    loaded: list[LoadedModel] = []
    previous = store.previous()
    for name, version in store.current().items():
        for candidate in _fallbacks(name, version, previous.get(name)):
            try:
                model = _load_verified(store.path(name, candidate), policy)
            except ApplianceError as exc:
                log.error("installed bundle %s v%s refused at start-up: %s", name, candidate, exc)
                continue
            repository.swap(model)
            loaded.append(model)
            break
    return loaded


def _fallbacks(name: str, current: int, previous: int | None) -> Iterable[int]:
    yield current
    if previous is not None and previous != current:
        yield previous
