"""``appliance features …``: define, list, ingest, materialise and look up features on a hub."""

from __future__ import annotations

import argparse
from pathlib import Path

import msgspec
from rich.table import Table

from appliance.cli.connect import hub_flags, user_client
from appliance.cli.output import console
from appliance.errors import ConfigError
from appliance.wire.features import FeatureDefinitions, KeyValue


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from exc


def features_define(args: argparse.Namespace) -> int:
    try:
        definitions = msgspec.json.decode(
            _read(args.file, "definitions file"), type=FeatureDefinitions
        )
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{args.file}: not a valid definitions file: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{args.file}: not valid JSON: {exc}") from exc
    with user_client(args) as hub:
        result = hub.define_features(definitions)
    for entity in result.entities:
        state = "created" if entity.changed else "unchanged"
        keys = ", ".join(f"{k.name}:{k.dtype}" for k in entity.join_keys)
        console.print(f"entity [bold]{entity.name}[/] ({keys}) {state}")
    for view in result.feature_views:
        state = "new version" if view.changed else "unchanged"
        console.print(
            f"view [bold]{view.name}[/] version [bold]{view.version}[/] {state} "
            f"(zone {view.zone}, ttl {view.ttl_seconds}s, {len(view.features)} features)"
        )
    return 0


def features_list(args: argparse.Namespace) -> int:
    table = Table("view", "version", "entity", "zone", "ttl (s)", "features", "snapshots")
    count = 0
    with user_client(args) as hub:
        after = ""
        while True:
            page = hub.list_feature_views(after=after, limit=100)
            for v in page:
                table.add_row(
                    v.name,
                    str(v.version),
                    v.entity,
                    v.zone,
                    str(v.ttl_seconds),
                    ", ".join(f"{f.name}:{f.dtype}" for f in v.features),
                    str(v.snapshots),
                )
            count += len(page)
            if len(page) < 100:
                break
            after = page[-1].name
    if count:
        console.print(table)
    else:
        console.print("no feature views yet; try 'appliance features define FILE.json'")
    return 0


def features_ingest(args: argparse.Namespace) -> int:
    with user_client(args) as hub, console.status(f"uploading {args.file.name}…"):
        result = hub.ingest_features(
            args.view, _read(args.file, "data file"), filename=args.file.name, version=args.version
        )
    note = " (identical data was ingested before; nothing new written)" * result.already_present
    console.print(
        f"[bold]{result.rows}[/] rows into {result.view} v{result.version}, snapshot "
        f"{result.snapshot_sha256[:16]} ({result.min_event_time} .. {result.max_event_time}){note}"
    )
    if result.ignored_columns:
        console.print(f"ignored columns not in the view: {', '.join(result.ignored_columns)}")
    return 0


def features_materialize(args: argparse.Namespace) -> int:
    with user_client(args) as hub:
        result = hub.materialize_features(args.view)
    console.print(
        f"{result.view} v{result.version}: {result.entities} entities in the online store "
        f"from {len(result.snapshots)} snapshot(s) at {result.materialized_at}"
    )
    return 0


def _key(raw: str) -> KeyValue | list[KeyValue]:
    """``42`` or ``abc``; ``a,b`` for a compound key (the hub converts to the key types)."""
    if "," in raw:
        return list[KeyValue](raw.split(","))
    return raw


def features_online(args: argparse.Namespace) -> int:
    with user_client(args) as hub:
        answer = hub.online_features(args.view, [_key(k) for k in args.keys], zone=args.zone)
    table = Table("key", "status", "event time", "age (s)", "values")
    for r in answer.results:
        values = ", ".join(f"{k}={v}" for k, v in (r.values or {}).items()) or "-"
        age = f"{r.age_seconds:.0f}" if r.age_seconds is not None else "-"
        table.add_row(str(r.key), r.status, r.event_time or "-", age, values)
    console.print(table)
    return 0


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], data_dir: argparse.ArgumentParser
) -> None:
    """``data_dir`` is accepted for symmetry with the other groups; every command talks HTTP."""
    del data_dir
    features = sub.add_parser("features", help="the hub's feature store")
    fsub = features.add_subparsers(dest="features_command", required=True)
    hub_flag = hub_flags()

    define = fsub.add_parser(
        "define", parents=[hub_flag], help="create or update entities and feature views"
    )
    define.add_argument("file", type=Path, help="JSON with 'entities' and 'feature_views'")
    define.set_defaults(func=features_define)

    lst = fsub.add_parser("list", parents=[hub_flag], help="list feature views")
    lst.set_defaults(func=features_list)

    ingest = fsub.add_parser(
        "ingest", parents=[hub_flag], help="ingest a CSV or Parquet file (all rows or none)"
    )
    ingest.add_argument("view", help="feature view name")
    ingest.add_argument("file", type=Path, help="CSV (with a header line) or Parquet file")
    ingest.add_argument("--version", type=int, help="view version (default the latest)")
    ingest.set_defaults(func=features_ingest)

    mat = fsub.add_parser(
        "materialize", parents=[hub_flag], help="load a view's latest values into the online store"
    )
    mat.add_argument("view", help="feature view name")
    mat.set_defaults(func=features_materialize)

    online = fsub.add_parser("online", parents=[hub_flag], help="look up online feature values")
    online.add_argument("view", help="feature view name")
    online.add_argument("keys", nargs="+", metavar="KEY", help="entity key ('a,b' if compound)")
    online.add_argument("--zone", help="your residency zone (default the hub's)")
    online.set_defaults(func=features_online)
