"""Installing from an offline update bundle, through the same TUF client as online.

The agent's trusted metadata (``tuf/``) is shared by both paths, so a bundle
older than what the agent has seen, online or offline, is refused as a
rollback. A bundle past its expiry is refused unless the operator overrides,
and the override is recorded in ``overrides.jsonl`` and reported to the hub
with the next heartbeat that reaches it. Install is immediate (no probation:
nobody is sending requests to judge it by); a running agent notices the new
state within one sync interval and serves it.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from agent.identity import AgentIdentity, device_key, load_identity
from agent.installer import InstallPolicy, stage
from agent.store import BundleStore
from agent.updates.fetchers import OfflineFetcher
from agent.updates.trusted import TrustedUpdates, pinned_root
from appliance.clock import iso_utc, parse_utc, utcnow
from appliance.errors import ConfigError, StaleUpdateError, UpdateRefusedError
from appliance.trust.offline import METADATA_URL, TARGETS_URL, OfflineBundle

log = logging.getLogger(__name__)

OVERRIDES_FILE = "overrides.jsonl"


@dataclass(frozen=True)
class ImportResult:
    installed: list[tuple[str, int]]
    unchanged: list[tuple[str, int]]
    stale_override: bool


def record_override(data_dir: Path, entry: dict[str, object]) -> None:
    """Append one line and make it durable before anything is installed on its strength."""
    path = data_dir / OVERRIDES_FILE
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def offline_updates(
    data_dir: Path,
    identity: AgentIdentity,
    bundle: OfflineBundle,
    reference_time: datetime | None = None,
) -> TrustedUpdates:
    """The TUF client over an open update bundle, for this agent's group and keys."""
    return TrustedUpdates(
        data_dir,
        root=pinned_root(data_dir),
        fetcher=OfflineFetcher(bundle),
        metadata_url=METADATA_URL,
        targets_url=TARGETS_URL,
        zone=identity.zone,
        group=identity.group,
        agent_id=identity.agent_id,
        offline=True,
        reference_time=reference_time,
    )


def import_bundle(
    path: Path,
    data_dir: Path,
    policy: InstallPolicy,
    *,
    allow_stale: bool = False,
    max_bytes: int = 4 << 30,
) -> ImportResult:
    identity = load_identity(data_dir)
    if identity is None:
        raise ConfigError(
            f"agent in {data_dir} is not enrolled",
            hint="enrol it once while it can reach the hub; offline bundles are bound to its "
            "group and keys",
        )
    store = BundleStore(data_dir)
    with OfflineBundle(path, max_bytes=max_bytes) as bundle:
        header = bundle.header
        if (header.zone, header.group) != (identity.zone, identity.group):
            raise UpdateRefusedError(
                f"update bundle is for group {header.group!r} of zone {header.zone!r}; this "
                f"agent is in group {identity.group!r} of zone {identity.zone!r}",
                hint="export a bundle for this agent's group",
            )
        reference_time = _stale_check(header.expires_at, allow_stale)
        if reference_time is not None:
            record_override(
                data_dir,
                {
                    "at": iso_utc(utcnow()),
                    "by": getpass.getuser(),
                    "action": "import stale update bundle",
                    "bundle": str(path),
                    "expired_at": header.expires_at,
                    "timestamp_version": header.timestamp_version,
                },
            )
            log.warning(
                "installing from a bundle that expired at %s (override recorded)", header.expires_at
            )
        updates = offline_updates(data_dir, identity, bundle, reference_time)
        key = device_key(data_dir, identity)
        installed: list[tuple[str, int]] = []
        with store.install_lock():
            store.clear_staging()
            current = store.current()
            unchanged = [(n, v) for n, v in updates.index().models.items() if current.get(n) == v]
            for offer in updates.offers(set(current.items())):
                if not offer.default:
                    continue  # experiments need live traffic; an offline import installs defaults
                work = store.new_staging_dir()
                try:
                    target = updates.download(offer, work / "target")
                    model = stage(target, offer, key, store, policy)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
                store.commit(model.name, model.version, offer.target_sha256)
                installed.append((model.name, model.version))
    return ImportResult(installed, unchanged, reference_time is not None)


def _stale_check(expires_at: str, allow_stale: bool) -> datetime | None:
    """None when the bundle is in date; the time to judge it by when stale and overridden."""
    try:
        expires = parse_utc(expires_at)
    except ValueError as exc:
        raise UpdateRefusedError(f"update bundle's expiry {expires_at!r} is unreadable") from exc
    if expires > utcnow():
        return None
    if not allow_stale:
        raise StaleUpdateError(
            f"update bundle expired at {expires_at}",
            hint="export a fresh one from the hub ('appliance bundle export'), or pass "
            "--allow-stale to install it anyway (the override is recorded)",
        )
    return expires - timedelta(seconds=1)
