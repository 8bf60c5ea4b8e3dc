"""Pure checks of entity and feature-view definitions, and their canonical hash.

No I/O here: the service stores what these functions accept. A view's
*definition* is the view plus its entity's join keys, so changing either
makes a new version of the view.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import msgspec

from appliance.errors import InvalidInputError
from appliance.wire.features import EntityDefinition, FeatureViewDefinition, KeyColumn

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,62}")
"""Names end up as SQL identifiers and file names: lower-case, digits and '_' only."""
COLUMN_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
MAX_TTL_SECONDS = 10 * 365 * 24 * 3600
RESERVED_PREFIX = "__"


def check_name(name: str, field: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInputError(
            f"{field}: {name!r} is not a valid name",
            hint="use 1-63 lower-case letters, digits or '_', starting with a letter",
        )


def check_column(name: str, field: str) -> None:
    if not COLUMN_PATTERN.fullmatch(name) or name.startswith(RESERVED_PREFIX):
        raise InvalidInputError(
            f"{field}: {name!r} is not a valid column name",
            hint="use letters, digits or '_', starting with a letter (not '__')",
        )


def check_entity(entity: EntityDefinition) -> None:
    check_name(entity.name, "entities.name")
    if not entity.join_keys:
        raise InvalidInputError(f"entities[{entity.name}].join_keys: at least one join key")
    seen: set[str] = set()
    for key in entity.join_keys:
        check_column(key.name, f"entities[{entity.name}].join_keys.name")
        if key.name in seen:
            raise InvalidInputError(f"entities[{entity.name}].join_keys: {key.name!r} twice")
        seen.add(key.name)


def check_view(view: FeatureViewDefinition, join_keys: list[KeyColumn]) -> None:
    where = f"feature_views[{view.name}]"
    check_name(view.name, "feature_views.name")
    check_column(view.timestamp_column, f"{where}.timestamp_column")
    if not view.features:
        raise InvalidInputError(f"{where}.features: at least one feature")
    if not 0 < view.ttl_seconds <= MAX_TTL_SECONDS:
        raise InvalidInputError(
            f"{where}.ttl_seconds: must be between 1 and {MAX_TTL_SECONDS}, not {view.ttl_seconds}"
        )
    taken = {k.name for k in join_keys} | {view.timestamp_column}
    for feature in view.features:
        check_column(feature.name, f"{where}.features.name")
        if feature.name in taken:
            raise InvalidInputError(
                f"{where}.features: {feature.name!r} clashes with a join key, the timestamp "
                "column or another feature"
            )
        taken.add(feature.name)


def stored_definition(view: FeatureViewDefinition, join_keys: list[KeyColumn]) -> dict[str, Any]:
    """What a version records: the view and its entity's join keys, as plain JSON."""
    body: dict[str, Any] = msgspec.to_builtins(view)
    body["join_keys"] = msgspec.to_builtins(join_keys)
    return body


def definition_sha256(definition: dict[str, Any]) -> str:
    """Hash of the canonical JSON (sorted keys), descriptions left out: they are not data."""
    meaningful = {k: v for k, v in definition.items() if k != "description"}
    meaningful["features"] = [
        {k: v for k, v in f.items() if k != "description"} for f in definition["features"]
    ]
    canonical = msgspec.json.encode(meaningful, order="sorted")
    return hashlib.sha256(canonical).hexdigest()
