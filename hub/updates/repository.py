"""The hub's TUF repository: root, targets, snapshot, timestamp and one role per group.

Metadata is built and signed with python-tuf's ``tuf.api.metadata`` and kept
as files under ``data_dir/tuf/metadata`` with consistent-snapshot names
(``N.root.json``, ``V.snapshot.json``, ``V.targets.json``, ``V.<zone>.<group>.json``
and ``timestamp.json``), the layout ``tuf.ngclient.Updater`` fetches. Each file
is written atomically and never changed once published, so a client reading
while the hub publishes sees one whole publication or the one before.

Keys (Ed25519, PEM, owner-only, under ``data_dir/keys/tuf``):

* ``root-*.key`` — root; on a fresh hub one key is created here so the
  embedded default works alone. ``appliance keys root`` makes offline root keys
  and signs a rotation with them, after which the hub holds no root key.
* ``targets.key``, ``groups.key``, ``snapshot.key``, ``timestamp.key`` — online:
  publishing on promotion and re-signing the timestamp need them on the hub.

The current state is read back from the files (timestamp → snapshot → the rest),
so there is no second record of it that could disagree.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from securesystemslib.signer import CryptoSigner, Key, Signer, SSlibKey
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from appliance.clock import utcnow
from appliance.errors import ConfigError
from appliance.fsutil import atomic_write_bytes, sha256_bytes
from appliance.security.keys import KeyPair, init_keypair, load_keypair
from appliance.trust.layout import (
    EXPIRY,
    group_of_role,
    group_prefix,
    group_role,
    index_path,
    index_role,
)

ONLINE_ROLES = ("targets", "groups", "snapshot", "timestamp")
TOP_LEVEL = ("root", "targets", "snapshot", "timestamp")
KEEP_VERSIONS = 8
"""Older metadata files kept for clients mid-update; the rest are pruned."""

S = TypeVar("S", Root, Timestamp, Snapshot, Targets)


def signer_for(pair: KeyPair) -> CryptoSigner:
    return CryptoSigner(pair.private)


def public_key(pair: KeyPair) -> Key:
    return SSlibKey.from_crypto(pair.public)


def _expiry(now: datetime, role: str, at_least: timedelta | None) -> datetime:
    period = EXPIRY[role]
    if at_least is not None and at_least > period:
        period = at_least
    return (now + period).replace(microsecond=0)


@dataclass(frozen=True)
class GroupTargets:
    """What one group's two roles should list: the index, and everything else."""

    zone: str
    group: str
    index: TargetFile
    targets: Mapping[str, TargetFile]

    def roles(self) -> dict[str, dict[str, TargetFile]]:
        return {
            index_role(self.zone, self.group): {self.index.path: self.index},
            group_role(self.zone, self.group): dict(self.targets),
        }


@dataclass
class Publication:
    timestamp: int
    snapshot: int
    targets: int
    roles: dict[str, int] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)
    """Roles that got a new version in this publication."""


class UpdateRepository:
    def __init__(
        self, root_dir: Path, keys_dir: Path, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.metadata_dir = root_dir / "metadata"
        self.keys_dir = keys_dir
        self.clock = clock
        self.lock = threading.RLock()
        self._serializer = JSONSerializer(compact=False)

    # -- keys ---------------------------------------------------------------------

    def online_key(self, role: str) -> KeyPair:
        return init_keypair(self.keys_dir, role)

    def root_keys_here(self) -> list[KeyPair]:
        paths = sorted(self.keys_dir.glob("root-*.key"))
        return [load_keypair(self.keys_dir, p.stem) for p in paths]

    # -- reading ------------------------------------------------------------------

    def path(self, filename: str) -> Path:
        return self.metadata_dir / filename

    def _read(self, filename: str, kind: type[S]) -> Metadata[S]:
        md = Metadata[S].from_file(str(self.path(filename)))
        if not isinstance(md.signed, kind):
            raise ConfigError(f"{self.path(filename)} is not {kind.type} metadata")
        return md

    @property
    def initialised(self) -> bool:
        return self.path("timestamp.json").exists()

    def root(self) -> Metadata[Root]:
        versions = sorted(int(p.name.split(".")[0]) for p in self.metadata_dir.glob("*.root.json"))
        if not versions:
            raise ConfigError("the hub's TUF repository has no root metadata")
        return self._read(f"{versions[-1]}.root.json", Root)

    def root_bytes(self, version: int | None = None) -> bytes:
        version = version if version is not None else self.root().signed.version
        return self.path(f"{version}.root.json").read_bytes()

    def timestamp(self) -> Metadata[Timestamp]:
        return self._read("timestamp.json", Timestamp)

    def snapshot(self) -> Metadata[Snapshot]:
        version = self.timestamp().signed.snapshot_meta.version
        return self._read(f"{version}.snapshot.json", Snapshot)

    def targets(self, role: str = "targets") -> Metadata[Targets]:
        version = self.snapshot().signed.meta[f"{role}.json"].version
        return self._read(f"{version}.{role}.json", Targets)

    def group_roles(self) -> list[str]:
        """Every delegated role (two per group), in delegation order."""
        delegations = self.targets().signed.delegations
        return list(delegations.roles) if delegations and delegations.roles else []

    def groups(self) -> list[tuple[str, str]]:
        return sorted({group_of_role(r) for r in self.group_roles()})

    # -- writing ------------------------------------------------------------------

    def _write(self, md: Metadata[Any], filename: str) -> MetaFile:
        data = md.to_bytes(self._serializer)
        atomic_write_bytes(self.path(filename), data)
        return MetaFile(version=md.signed.version, length=len(data), hashes=_sha256(data))

    def _sign(self, md: Metadata[Any], signers: Iterable[Signer]) -> None:
        md.signatures.clear()
        for signer in signers:
            md.sign(signer, append=True)

    def initialise(self, *, root_threshold: int = 1) -> None:
        """Create version 1 of every top-level role, with a root key on the hub."""
        with self.lock:
            if self.initialised:
                return
            self.metadata_dir.mkdir(parents=True, exist_ok=True)
            now = self.clock()
            root_pairs = self.root_keys_here() or [
                init_keypair(self.keys_dir, f"root-{i}") for i in range(1, root_threshold + 1)
            ]
            root = Root(expires=_expiry(now, "root", None), consistent_snapshot=True)
            for pair in root_pairs:
                root.add_key(public_key(pair), "root")
            root.roles["root"].threshold = root_threshold
            for role in ("targets", "snapshot", "timestamp"):
                root.add_key(public_key(self.online_key(role)), role)
            root_md = Metadata(root)
            self._sign(root_md, [signer_for(p) for p in root_pairs])
            self._write(root_md, "1.root.json")
            self._publish_locked([], now=now, force=True)

    def publish(
        self, groups: Iterable[GroupTargets], *, valid_for: timedelta | None = None
    ) -> Publication:
        """Make each group's role list exactly ``targets``; sign what changed.

        Groups not named keep their role and targets. ``valid_for`` asks that every
        role in the chain stays valid at least that long (offline bundles).
        """
        with self.lock:
            return self._publish_locked(list(groups), now=self.clock(), valid_for=valid_for)

    def _publish_locked(
        self,
        groups: list[GroupTargets],
        *,
        now: datetime,
        valid_for: timedelta | None = None,
        force: bool = False,
    ) -> Publication:
        def expiring(md: Metadata[Any], role: str) -> bool:
            horizon = valid_for if valid_for is not None else EXPIRY[role] / 3
            return bool(md.signed.expires < now + horizon)

        fresh = not self.path("timestamp.json").exists()
        old_meta: dict[str, MetaFile] = {} if fresh else dict(self.snapshot().signed.meta)
        new_meta: dict[str, MetaFile] = dict(old_meta)
        changed: list[str] = []
        groups_key = self.online_key("groups")
        expires = _expiry(now, "group", valid_for)

        # Delegated roles, two per group.
        known = set() if fresh else set(self.group_roles())
        wanted_roles = {r: t for g in groups for r, t in g.roles().items()}
        for role, targets in wanted_roles.items():
            current = None if role not in known else self.targets(role)
            if (
                current is not None
                and not force
                and dict(current.signed.targets) == targets
                and not expiring(current, "group")
            ):
                continue
            new_meta[f"{role}.json"] = self._write_group_role(role, targets, current, expires)
            changed.append(role)
        for role in known - set(wanted_roles):
            current = self.targets(role)
            if expiring(current, "group"):
                new_meta[f"{role}.json"] = self._write_group_role(
                    role, dict(current.signed.targets), current, expires
                )
                changed.append(role)

        # Top-level targets: the delegations, a group's index role before its other role.
        roles = known | set(wanted_roles)
        top = None if fresh else self.targets()
        if top is None or force or roles != known or expiring(top, "targets"):
            keyid = public_key(groups_key).keyid
            delegated: dict[str, DelegatedRole] = {}
            for zone, group in sorted({group_of_role(r) for r in roles}):
                for name, paths in (
                    (index_role(zone, group), [index_path(zone, group)]),
                    (group_role(zone, group), [group_prefix(zone, group) + "*"]),
                ):
                    delegated[name] = DelegatedRole(
                        name=name, keyids=[keyid], threshold=1, terminating=True, paths=paths
                    )
            delegations = Delegations(keys={keyid: public_key(groups_key)}, roles=delegated)
            version = 1 if top is None else top.signed.version + 1
            md = Metadata(
                Targets(
                    version=version,
                    expires=_expiry(now, "targets", valid_for),
                    delegations=delegations,
                )
            )
            self._sign(md, [signer_for(self.online_key("targets"))])
            new_meta["targets.json"] = self._write(md, f"{version}.targets.json")
            changed.append("targets")

        # Snapshot and timestamp.
        snapshot = None if fresh else self.snapshot()
        if snapshot is None or changed or expiring(snapshot, "snapshot"):
            version = 1 if snapshot is None else snapshot.signed.version + 1
            md_s = Metadata(
                Snapshot(
                    version=version,
                    expires=_expiry(now, "snapshot", valid_for),
                    meta={k: MetaFile(version=v.version) for k, v in new_meta.items()},
                )
            )
            self._sign(md_s, [signer_for(self.online_key("snapshot"))])
            snapshot_file = self._write(md_s, f"{version}.snapshot.json")
            changed.append("snapshot")
        else:
            snapshot_file = self.timestamp().signed.snapshot_meta
        # An export (valid_for) always gets a timestamp of its own validity.
        if (
            fresh
            or changed
            or force
            or valid_for is not None
            or expiring(self.timestamp(), "timestamp")
        ):
            self._write_timestamp(snapshot_file, now=now, valid_for=valid_for)
            changed.append("timestamp")
        self._prune()
        return self._publication(changed)

    def _write_group_role(
        self,
        role: str,
        targets: dict[str, TargetFile],
        current: Metadata[Targets] | None,
        expires: datetime,
    ) -> MetaFile:
        version = 1 if current is None else current.signed.version + 1
        md = Metadata(Targets(version=version, expires=expires, targets=targets))
        self._sign(md, [signer_for(self.online_key("groups"))])
        return self._write(md, f"{version}.{role}.json")

    def _write_timestamp(
        self, snapshot_file: MetaFile, *, now: datetime, valid_for: timedelta | None
    ) -> None:
        previous = self.timestamp().signed.version if self.path("timestamp.json").exists() else 0
        md = Metadata(
            Timestamp(
                version=previous + 1,
                expires=_expiry(now, "timestamp", valid_for),
                snapshot_meta=snapshot_file,
            )
        )
        self._sign(md, [signer_for(self.online_key("timestamp"))])
        self._write(md, "timestamp.json")

    def refresh(self) -> Publication | None:
        """Re-sign what expires within a third of its period (the hourly job); None if nothing."""
        with self.lock:
            publication = self._publish_locked([], now=self.clock())
            return publication if publication.changed else None

    def shorten_timestamp(self) -> None:
        """After an offline export, put the online timestamp back on its short expiry."""
        with self.lock:
            now = self.clock()
            self._write_timestamp(self.timestamp().signed.snapshot_meta, now=now, valid_for=None)

    def _publication(self, changed: list[str]) -> Publication:
        snapshot = self.snapshot()
        return Publication(
            timestamp=self.timestamp().signed.version,
            snapshot=snapshot.signed.version,
            targets=snapshot.signed.meta["targets.json"].version,
            roles={
                k.removesuffix(".json"): v.version
                for k, v in snapshot.signed.meta.items()
                if k != "targets.json"
            },
            changed=changed,
        )

    def _prune(self) -> None:
        meta = self.snapshot().signed.meta
        current = {k.removesuffix(".json"): v.version for k, v in meta.items()}
        current["snapshot"] = self.timestamp().signed.snapshot_meta.version
        for path in self.metadata_dir.glob("*.json"):
            version, _, rest = path.name.partition(".")
            role = rest.removesuffix(".json")
            if (
                version.isdigit()
                and role in current
                and int(version) <= current[role] - KEEP_VERSIONS
            ):
                path.unlink(missing_ok=True)

    # -- root rotation ------------------------------------------------------------

    def rotate_root(
        self,
        *,
        old_root_keys: list[KeyPair],
        new_root_keys: list[KeyPair],
        threshold: int,
        rotate_online: Iterable[str] = (),
    ) -> int:
        """Sign root N+1 with the old and the new root keys; optionally replace online keys.

        The old keys must meet the old threshold, the new keys the new one, as a
        client verifies both. Replaced online keys get new files; the hub then
        re-signs what they sign, so clients move over on their next refresh.
        """
        with self.lock:
            current = self.root()
            root = current.signed
            if threshold < 1 or threshold > len(new_root_keys):
                raise ConfigError(
                    f"root threshold {threshold} needs at least that many new root keys "
                    f"(got {len(new_root_keys)})"
                )
            old_ids = set(root.roles["root"].keyids)
            signing_old = [k for k in old_root_keys if public_key(k).keyid in old_ids]
            if len(signing_old) < root.roles["root"].threshold:
                raise ConfigError(
                    f"root v{root.version} needs {root.roles['root'].threshold} of its keys to "
                    f"sign a rotation; {len(signing_old)} given",
                    hint="pass the current root keys with --old-key",
                )
            for keyid in list(root.roles["root"].keyids):
                root.revoke_key(keyid, "root")
            for pair in new_root_keys:
                root.add_key(public_key(pair), "root")
            root.roles["root"].threshold = threshold
            rotated = list(rotate_online)
            for role in rotated:
                if role not in ("targets", "snapshot", "timestamp"):
                    raise ConfigError(f"{role!r} is not an online top-level role")
                for keyid in list(root.roles[role].keyids):
                    root.revoke_key(keyid, role)
                root.add_key(public_key(init_keypair(self.keys_dir, role, force=True)), role)
            root.version += 1
            root.expires = _expiry(self.clock(), "root", None)
            md = Metadata(root)
            self._sign(md, [signer_for(k) for k in signing_old + new_root_keys])
            self._write(md, f"{root.version}.root.json")
            if rotated:
                self._publish_locked([], now=self.clock(), force=True)
            return root.version

    def forget_root_keys_here(self) -> list[Path]:
        """Remove root keys the current root no longer lists (after moving root offline)."""
        listed = set(self.root().signed.roles["root"].keyids)
        removed = []
        for pair_path in sorted(self.keys_dir.glob("root-*.key")):
            pair = load_keypair(self.keys_dir, pair_path.stem)
            if public_key(pair).keyid not in listed:
                pair_path.unlink()
                pair_path.with_suffix(".pub").unlink(missing_ok=True)
                removed.append(pair_path)
        return removed


def _sha256(data: bytes) -> dict[str, str]:
    return {"sha256": sha256_bytes(data)}


def new_root_key(directory: Path, name: str) -> KeyPair:
    """An Ed25519 root key for keeping offline (``appliance keys root create``)."""
    if (directory / f"{name}.key").exists():
        raise ConfigError(f"{directory / name}.key exists; refusing to overwrite a root key")
    return init_keypair(directory, name)


def load_private(path: Path) -> KeyPair:
    return load_keypair(path.parent, path.name.removesuffix(".key"))
