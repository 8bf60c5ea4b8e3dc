"""Installing a verified target: decrypt, unpack, check, load, test, switch — or change nothing.

The target file reaching here has passed TUF's length and hash checks. Each
step below can still refuse it; until :meth:`BundleStore.begin` (or
``commit`` for an offline import) nothing the agent serves or remembers has
changed, so a bad bundle leaves the last good model serving.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import msgspec
import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.repository import LoadedModel, ModelRepository
from agent.runtime import ModelRuntime, load_runtime, pick_runtime
from agent.runtime.onnx import OnnxRuntimeModel
from agent.runtime.providers import gpu_providers, short_name
from agent.store import BundleStore
from agent.updates.trusted import Offer
from appliance.bundle.format import check_test_vectors, unpack, verify_bundle
from appliance.bundle.manifest import Manifest
from appliance.errors import (
    ApplianceError,
    BundleFormatError,
    DecryptionError,
    IntegrityError,
    ModelLoadError,
    StorageError,
    TestVectorError,
)
from appliance.security.sealing import open_decrypted, unwrap_key
from appliance.settings import RuntimeChoice
from appliance.trust.layout import seal_aad, wrap_context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InstallPolicy:
    runtime: RuntimeChoice
    threads: int
    max_bundle_bytes: int = 2 << 30


@dataclass(frozen=True)
class DeviceKey:
    """What opens targets encrypted for this agent."""

    agent_id: int
    private: X25519PrivateKey | None


def _candidates(
    folder: Path, manifest: Manifest, policy: InstallPolicy
) -> list[tuple[str, Callable[[], ModelRuntime]]]:
    """The runtimes to try, best first: with ``auto``, ONNX Runtime's GPU providers
    (:mod:`agent.runtime.providers`), then what :func:`pick_runtime` picks, then ONNX
    Runtime on the CPU; otherwise only the runtime asked for."""
    chosen = pick_runtime(policy.runtime, manifest)
    candidates: list[tuple[str, Callable[[], ModelRuntime]]] = []
    if policy.runtime == "auto":
        for provider in gpu_providers():
            candidates.append(
                (
                    f"onnxruntime ({short_name(provider)})",
                    partial(OnnxRuntimeModel, folder, manifest, policy.threads, provider),
                )
            )
    candidates.append((chosen, partial(load_runtime, folder, manifest, chosen, policy.threads)))
    if policy.runtime == "auto" and chosen != "onnxruntime":
        candidates.append(
            ("onnxruntime", partial(load_runtime, folder, manifest, "onnxruntime", policy.threads))
        )
    return candidates


def load_verified(folder: Path, policy: InstallPolicy, *, check_hashes: bool) -> LoadedModel:
    """Check the files against the manifest, load, warm up on the test vectors.

    ``check_hashes=False`` only for a sealed slot opened at start-up: AES-GCM has
    just authenticated every byte the agent itself checked when installing it.
    An install always checks: the manifest's hashes, fixed when the version was
    registered, catch a stored bundle that was corrupted or naively altered on
    the hub's disk, which the hub would otherwise sign and encrypt as it is.
    """
    manifest: Manifest = verify_bundle(folder, None, check_hashes=check_hashes)
    reference = _reference(folder, manifest)
    candidates = _candidates(folder, manifest, policy)
    for index, (name, load) in enumerate(candidates):
        try:
            runtime = load()
            checked = check_test_vectors(folder, manifest, runtime.infer)
            break
        except (TestVectorError, ModelLoadError) as exc:
            if index == len(candidates) - 1:
                raise
            # The hub checked the model on its own CPU; this host's kernels may differ.
            log.warning(
                "%s v%s: %s fails on this host (%s); trying %s",
                manifest.name,
                manifest.version,
                name,
                exc,
                candidates[index + 1][0],
            )
    log.info(
        "%s v%s verified and passed %d test vectors on %s",
        manifest.name,
        manifest.version,
        checked,
        name,
    )
    return LoadedModel(manifest=manifest, runtime=runtime, folder=folder, reference=reference)


def _reference(folder: Path, manifest: Manifest) -> np.ndarray | None:
    """The reference sample, read while the bundle is open (a sealed one is wiped after)."""
    if not manifest.reference_sample or manifest.reference_sample not in manifest.files:
        return None
    try:
        sample = np.load(folder / manifest.reference_sample, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BundleFormatError(f"reference sample unreadable: {exc}") from exc
    return sample.astype(np.float32, copy=False) if sample.ndim == 2 else None


SEALED_FILE = "sealed.tar"
SEALING_FILE = "sealing.json"


class SealedSlot(msgspec.Struct, frozen=True, kw_only=True):
    """Beside an encrypted target at rest: what opens it on this agent."""

    model: str
    version: int
    path: str
    wrapped: dict[str, str]


def _seal_slot(target: Path, offer: Offer, key: DeviceKey, slot: Path) -> None:
    """Keep an encrypted target as it came, beside this agent's wrapped key: no plain model."""
    wrapped = offer.wrapped
    if wrapped is None or key.private is None:
        raise DecryptionError(
            f"{offer.name} v{offer.version} is encrypted and not addressed to this agent "
            f"(id {key.agent_id})",
            hint="an agent enrolled after the bundle was published gets its key with the "
            "next publication; ask the hub operator to export or publish again",
        )
    slot.mkdir()
    shutil.move(target, slot / SEALED_FILE)
    info = SealedSlot(
        model=offer.name, version=offer.version, path=offer.target.path, wrapped=wrapped
    )
    (slot / SEALING_FILE).write_bytes(msgspec.json.encode(info))


@contextlib.contextmanager
def opened(
    slot: Path, key: DeviceKey, store: BundleStore, limit: int
) -> Iterator[tuple[Path, bool]]:
    """The slot's bundle folder, and whether its bytes are already authenticated.

    A sealed slot is opened into a private folder (AES-GCM checks every byte),
    then wiped; a plain slot is used where it lies and needs its hashes checked.
    """
    sealed = slot / SEALED_FILE
    if not sealed.exists():
        yield slot, False
        return
    if key.private is None:
        raise DecryptionError("this agent has no encryption key to open its sealed models")
    try:
        info = msgspec.json.decode((slot / SEALING_FILE).read_bytes(), type=SealedSlot)
    except (OSError, msgspec.DecodeError) as exc:
        raise BundleFormatError(f"{slot / SEALING_FILE} is unreadable: {exc}") from exc
    data_key = unwrap_key(info.wrapped, key.private, wrap_context(info.path, key.agent_id))
    work = store.new_staging_dir()  # mkdtemp: 0700
    try:
        aad = seal_aad(info.model, info.version)
        # Decrypted straight into the unpacker: no plain tar is ever written. The stream
        # authenticates its end last, and an error then discards the whole folder.
        with open_decrypted(sealed, data_key, aad, max_bytes=limit) as stream:
            unpack(stream, work / "bundle", max_bytes=limit)
            while rest := stream.read(1 << 20):  # to the end, so the last segment is checked
                if any(rest):
                    raise BundleFormatError(f"{slot.name}: data after the end of the bundle")
        yield work / "bundle", True
    finally:
        shutil.rmtree(work, ignore_errors=True)


def load_slot(
    slot: Path,
    key: DeviceKey,
    store: BundleStore,
    policy: InstallPolicy,
    *,
    installing: bool = False,
) -> LoadedModel:
    with opened(slot, key, store, policy.max_bundle_bytes) as (folder, authenticated):
        model = load_verified(folder, policy, check_hashes=installing or not authenticated)
    return dataclasses.replace(model, folder=slot)


def stage(
    target: Path, offer: Offer, key: DeviceKey, store: BundleStore, policy: InstallPolicy
) -> LoadedModel:
    """Turn a downloaded target into a loaded, tested model in its slot folder.

    Nothing is recorded as serving yet; the caller decides between probation
    (:meth:`BundleStore.begin`) and an immediate :meth:`BundleStore.commit`.
    An encrypted target stays encrypted in its slot and is opened only to load.
    """
    work = store.new_staging_dir()
    try:
        slot = work / "slot"
        if offer.custom.encryption is not None:
            _seal_slot(target, offer, key, slot)
        else:
            unpack(target, slot, max_bytes=policy.max_bundle_bytes)
        candidate = load_slot(slot, key, store, policy, installing=True)
        if (candidate.name, candidate.version) != (offer.name, offer.version):
            raise IntegrityError(
                f"target for {offer.name} v{offer.version} holds "
                f"{candidate.name} v{candidate.version}"
            )
        final = store.place(slot, candidate.name, candidate.version)
        return dataclasses.replace(candidate, folder=final, target_sha256=offer.target_sha256)
    except OSError as exc:
        raise StorageError(
            f"could not install {offer.name} v{offer.version}: {exc.strerror or exc}",
            hint="free space in the agent's data directory; the current model keeps serving",
        ) from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)


def restore_installed(
    store: BundleStore, repository: ModelRepository, policy: InstallPolicy, key: DeviceKey
) -> list[LoadedModel]:
    """At start-up, serve the last good bundle of each model, re-verified from disk."""
    loaded: list[LoadedModel] = []
    for name, slots in store.state().models.items():
        for candidate in fallbacks(slots.current, slots.previous):
            try:
                model = load_slot(store.path(name, candidate), key, store, policy)
            except (ApplianceError, OSError) as exc:
                log.error("installed bundle %s v%s refused at start-up: %s", name, candidate, exc)
                continue
            model = dataclasses.replace(model, target_sha256=slots.targets.get(str(candidate)))
            repository.swap(model)
            loaded.append(model)
            break
        for version in slots.extra:
            try:
                extra = load_slot(store.path(name, version), key, store, policy)
            except (ApplianceError, OSError) as exc:
                log.error("experiment version %s v%s refused at start-up: %s", name, version, exc)
                continue
            repository.add_extra(extra)
            loaded.append(extra)
    return loaded


def fallbacks(*versions: int | None) -> Iterable[int]:
    """``versions`` to try in turn, best first, each once (``None``: no such slot)."""
    seen: set[int] = set()
    for version in versions:
        if version is not None and version not in seen:
            seen.add(version)
            yield version
