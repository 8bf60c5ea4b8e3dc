"""Wire schemas of the hub's feature-store API, shared by the hub, the CLI and workers.

A definitions file (``appliance features define FILE.json``) is one
:class:`FeatureDefinitions` object::

    {"entities": [{"name": "customer", "join_keys": [{"name": "customer_id", "dtype": "int64"}]}],
     "feature_views": [{"name": "customer_stats", "entity": "customer", "zone": "ae-dxb",
                        "ttl_seconds": 86400, "timestamp_column": "event_timestamp",
                        "features": [{"name": "spend_7d", "dtype": "float64"}]}]}
"""

from __future__ import annotations

from typing import Literal

import msgspec

FeatureType = Literal["int64", "float64", "bool", "string"]
KeyType = Literal["int64", "string"]
KeyValue = int | str
OnlineStatus = Literal["ok", "missing", "stale"]


class KeyColumn(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    dtype: KeyType = "int64"


class EntityDefinition(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    join_keys: list[KeyColumn]
    description: str = ""


class FeatureSpec(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    dtype: FeatureType
    description: str = ""


class FeatureViewDefinition(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    entity: str
    features: list[FeatureSpec]
    zone: str
    ttl_seconds: int
    """How long a value stays valid after its event time; older values read as missing."""
    timestamp_column: str = "event_timestamp"
    description: str = ""


class FeatureDefinitions(msgspec.Struct, kw_only=True):
    entities: list[EntityDefinition] = []
    feature_views: list[FeatureViewDefinition] = []


class EntityInfo(msgspec.Struct, kw_only=True):
    name: str
    join_keys: list[KeyColumn]
    description: str
    created_at: str
    created_by: str
    changed: bool = False
    """In an answer to ``define``: whether this call created or changed it."""


class FeatureViewInfo(msgspec.Struct, kw_only=True):
    name: str
    version: int
    entity: str
    join_keys: list[KeyColumn]
    features: list[FeatureSpec]
    zone: str
    ttl_seconds: int
    timestamp_column: str
    description: str
    definition_sha256: str
    created_at: str
    created_by: str
    snapshots: int = 0
    """Ingests recorded for this version."""
    changed: bool = False
    """In an answer to ``define``: whether this call made this version."""


class DefineResult(msgspec.Struct, kw_only=True):
    entities: list[EntityInfo]
    feature_views: list[FeatureViewInfo]


class IngestResult(msgspec.Struct, kw_only=True):
    view: str
    version: int
    snapshot_sha256: str
    """SHA-256 of the stored Parquet file: the dataset snapshot named in lineage."""
    rows: int
    path: str
    """Relative to the offline store's root."""
    min_event_time: str
    max_event_time: str
    created_at: str
    created_by: str
    ignored_columns: list[str] = []
    already_present: bool = False
    """The same content was ingested into this version before; nothing new was written."""


class SnapshotRef(msgspec.Struct, kw_only=True, frozen=True):
    view: str
    version: int
    snapshot_sha256: str


class MaterializeResult(msgspec.Struct, kw_only=True):
    view: str
    version: int
    entities: int
    materialized_at: str
    snapshots: list[str]


class OnlineRequest(msgspec.Struct, kw_only=True):
    view: str
    keys: list[KeyValue | list[KeyValue]]
    """One value per key for a single join key; a list (in join-key order) for compound keys."""
    zone: str | None = None
    """The requester's zone; default the hub's own."""


class OnlineValue(msgspec.Struct, kw_only=True, omit_defaults=True):
    key: KeyValue | list[KeyValue]
    status: OnlineStatus
    values: dict[str, int | float | bool | str | None] | None = None
    event_time: str | None = None
    age_seconds: float | None = None


class OnlineResponse(msgspec.Struct, kw_only=True):
    view: str
    version: int
    materialized_at: str
    results: list[OnlineValue]
