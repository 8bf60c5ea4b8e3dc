"""What the signed metadata offers this agent's group, through ``tuf.ngclient.Updater``.

One :class:`TrustedUpdates` is one refresh: ngclient walks the root chain from
the root pinned at set-up, then timestamp, snapshot and targets, refusing
expired, rolled-back, mixed or under-signed metadata; then the group's index
and each model target are looked up under the group's own delegation, so a
target for any other group is invisible here. python-tuf's exceptions are
translated once, below, into the appliance's own errors.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Set
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import msgspec
from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import TargetFile
from tuf.ngclient import Updater, UpdaterConfig
from tuf.ngclient.fetcher import FetcherInterface

from appliance.errors import (
    ApplianceError,
    BundleFormatError,
    ConfigError,
    HubUnavailableError,
    IntegrityError,
    RollbackRefusedError,
    SignatureError,
    StaleUpdateError,
    UpdateRefusedError,
)
from appliance.fsutil import atomic_write_bytes, file_lock
from appliance.trust.layout import (
    AgentKeys,
    ExperimentSpec,
    GroupIndex,
    ModelTarget,
    index_path,
    keys_path,
    model_path,
)

PINNED_ROOT = "pinned-root.json"
MAX_INDEX_BYTES = 1 << 20


def metadata_dir(data_dir: Path) -> Path:
    return data_dir / "tuf"


def pin_root(data_dir: Path, root: bytes) -> Path:
    """Keep the root this agent trusts from set-up on (written once, owner-only)."""
    path = metadata_dir(data_dir) / PINNED_ROOT
    atomic_write_bytes(path, root, mode=0o600)
    return path


def pinned_root(data_dir: Path, override: Path | None = None) -> bytes:
    path = override or metadata_dir(data_dir) / PINNED_ROOT
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(
            f"no trusted TUF root at {path}",
            hint="enrol the agent (it pins the hub's root) or pass --trusted-root",
        ) from exc


@dataclass(frozen=True)
class Offer:
    """One model the signed metadata says this group should run."""

    target: TargetFile
    custom: ModelTarget
    wrapped: dict[str, str] | None = None
    """Its data key wrapped for this agent, when the target is encrypted and it has one."""
    default: bool = True
    """The version answering requests that name none; else an experiment's extra version."""

    @property
    def name(self) -> str:
        return self.custom.model

    @property
    def version(self) -> int:
        return self.custom.version

    @property
    def target_sha256(self) -> str:
        return self.target.hashes["sha256"]


@contextlib.contextmanager
def tuf_errors_translated(*, offline: bool) -> Iterator[None]:
    """python-tuf's exceptions, said the appliance's way."""
    try:
        yield
    except ApplianceError:
        raise
    except tuf_errors.ExpiredMetadataError as exc:
        raise StaleUpdateError(
            f"update metadata has expired: {exc}",
            hint=(
                "export a fresh update bundle from the hub, or import with --allow-stale (recorded)"
                if offline
                else "the hub has not re-signed its metadata; check the hub's clock and "
                "scheduler. The agent keeps its current model"
            ),
        ) from exc
    except tuf_errors.BadVersionNumberError as exc:
        raise RollbackRefusedError(
            f"update metadata is older than this agent already trusts, or than its own "
            f"signed snapshot names: {exc}",
            hint="a replayed, out-of-date or mixed-up update; use the newest one from the hub",
        ) from exc
    except tuf_errors.UnsignedMetadataError as exc:
        raise SignatureError(
            f"update metadata is not signed by enough trusted keys: {exc}",
            hint="the metadata was not made by this agent's hub, or was altered",
        ) from exc
    except (tuf_errors.LengthOrHashMismatchError, tuf_errors.DownloadLengthMismatchError) as exc:
        raise IntegrityError(f"update does not match its signed length and hashes: {exc}") from exc
    except tuf_errors.RepositoryError as exc:
        raise UpdateRefusedError(f"update metadata refused: {exc}") from exc
    except tuf_errors.DownloadError as exc:
        if offline:
            raise BundleFormatError(f"update bundle is incomplete: {exc}") from exc
        raise HubUnavailableError(f"could not fetch updates from the hub: {exc}") from exc


def cached_experiments(data_dir: Path) -> dict[str, ExperimentSpec]:
    """Experiments in the last index this agent verified (kept beside its metadata)."""
    try:
        index = msgspec.json.decode(
            (metadata_dir(data_dir) / "index.json").read_bytes(), type=GroupIndex
        )
    except (OSError, msgspec.DecodeError):
        return {}
    return dict(index.experiments)


class TrustedUpdates:
    def __init__(
        self,
        data_dir: Path,
        *,
        root: bytes,
        fetcher: FetcherInterface,
        metadata_url: str,
        targets_url: str,
        zone: str,
        group: str,
        agent_id: int = 0,
        offline: bool = False,
        reference_time: datetime | None = None,
    ) -> None:
        self.zone = zone
        self.group = group
        self.agent_id = agent_id
        self.offline = offline
        self.folder = metadata_dir(data_dir)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._fetcher = fetcher
        self._targets_url = targets_url
        self._keys: AgentKeys | None = None
        self._index: GroupIndex | None = None
        # python-tuf rewrites root.json (a symlink: remove, then link) and the metadata
        # files as it starts and refreshes; the serving agent and `appliance bundle import`
        # may do so at once on one folder, so one at a time (the second saw FileExistsError)
        with file_lock(self._lock_file), tuf_errors_translated(offline=offline):
            self._updater = Updater(
                str(self.folder),
                metadata_url,
                target_base_url=targets_url,
                fetcher=fetcher,
                config=UpdaterConfig(max_delegations=4),
                bootstrap=root,
            )
        if reference_time is not None:
            # The operator's recorded override for a stale offline bundle: judge
            # expiry as of the bundle's own time. Signatures, versions and hashes
            # are still checked. python-tuf has no public knob for this.
            self._updater._trusted_set.reference_time = reference_time

    def _small_target(self, path: str, cache_name: str, limit: int) -> bytes | None:
        """A small verified target, kept beside the metadata and reused while its hash holds."""
        with tuf_errors_translated(offline=self.offline):
            info = self._updater.get_targetinfo(path)
            if info is None:
                return None
            if info.length > limit:
                raise IntegrityError(f"{path} is {info.length} bytes; more than {limit}")
            cached = self.folder / cache_name
            if self._updater.find_cached_target(info, str(cached)) is None:
                self._download_verified(info, cached)
        return cached.read_bytes()

    def index(self) -> GroupIndex:
        """Refresh the metadata (once) and return this group's signed index."""
        if self._index is None:
            self._index = self._load_index()
        return self._index

    @property
    def _lock_file(self) -> Path:
        """Held while python-tuf writes the metadata folder (across processes)."""
        return self.folder / "writing.lock"

    def _load_index(self) -> GroupIndex:
        with file_lock(self._lock_file):
            with tuf_errors_translated(offline=self.offline):
                self._updater.refresh()
            data = self._small_target(
                index_path(self.zone, self.group), "index.json", MAX_INDEX_BYTES
            )
        if data is None:
            return GroupIndex(zone=self.zone, group=self.group)
        try:
            index = msgspec.json.decode(data, type=GroupIndex)
        except msgspec.ValidationError as exc:
            raise BundleFormatError(f"group index is malformed: {exc}") from exc
        if (index.zone, index.group) != (self.zone, self.group):
            raise UpdateRefusedError(
                f"group index is for {index.zone}/{index.group}, not {self.zone}/{self.group}"
            )
        return index

    def _wrapped(self, target_path: str) -> dict[str, str] | None:
        if self._keys is None:
            data = self._small_target(
                keys_path(self.zone, self.group, self.agent_id), "keys.json", MAX_INDEX_BYTES
            )
            try:
                self._keys = msgspec.json.decode(data or b'{"agent_id": 0}', type=AgentKeys)
            except msgspec.ValidationError as exc:
                raise BundleFormatError(f"this agent's key list is malformed: {exc}") from exc
        if self._keys.agent_id not in (0, self.agent_id):
            raise UpdateRefusedError(f"key list is for agent {self._keys.agent_id}")
        return self._keys.keys.get(target_path)

    def offer(self, name: str, version: int) -> Offer | None:
        with tuf_errors_translated(offline=self.offline):
            info = self._updater.get_targetinfo(model_path(self.zone, self.group, name, version))
        if info is None:
            return None
        try:
            custom = msgspec.convert(info.custom, ModelTarget)
        except msgspec.ValidationError as exc:
            raise BundleFormatError(f"target {info.path} has malformed custom data: {exc}") from exc
        if (custom.model, custom.version) != (name, version):
            raise UpdateRefusedError(
                f"target {info.path} holds {custom.model} v{custom.version}, not {name} v{version}"
            )
        wrapped = self._wrapped(info.path) if custom.encryption is not None else None
        default = self.index().defaults_for(self.agent_id).get(name) == version
        return Offer(target=info, custom=custom, wrapped=wrapped, default=default)

    def offers(self, installed: Set[tuple[str, int]] = frozenset()) -> list[Offer]:
        """What the group should have loaded and this agent has not: the group's role
        is read only when the index names a version not ``installed``."""
        found = []
        for name, version in sorted(self.index().wanted(self.agent_id) - installed):
            offer = self.offer(name, version)
            if offer is not None:
                found.append(offer)
        return found

    def _download_verified(self, info: TargetFile, dest: Path) -> None:
        """One pass: stream the target into ``dest``, bounded by, and checked against,
        the length and SHA-256 the verified metadata gives (ngclient's own download
        spools to a temporary file, re-reads it and copies it: three passes)."""
        digest = info.hashes.get("sha256")
        if digest is None:
            self._updater.download_target(info, str(dest))
            return
        folder, sep, base = info.path.rpartition("/")
        url = f"{self._targets_url}{folder}{sep}{digest}.{base}"
        hasher = hashlib.sha256()
        received = 0
        try:
            with dest.open("wb") as handle:
                for chunk in self._fetcher.fetch(url):
                    received += len(chunk)
                    if received > info.length:
                        raise tuf_errors.DownloadLengthMismatchError(
                            f"{info.path}: more than the {info.length} bytes signed for it"
                        )
                    hasher.update(chunk)
                    handle.write(chunk)
            if received != info.length or hasher.hexdigest() != digest:
                raise tuf_errors.LengthOrHashMismatchError(
                    f"{info.path}: {received} bytes, SHA-256 {hasher.hexdigest()[:16]}…; "
                    f"signed: {info.length} bytes, {digest[:16]}…"
                )
        except BaseException:
            dest.unlink(missing_ok=True)
            raise

    def download(self, offer: Offer, dest: Path) -> Path:
        """Fetch a model target into ``dest``, checked against its signed length and hash."""
        with tuf_errors_translated(offline=self.offline):
            self._download_verified(offer.target, dest)
        return dest
