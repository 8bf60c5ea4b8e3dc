"""Wire schemas of the model registry: versions, models and stage changes."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Stage = Literal["candidate", "staging", "production", "archived"]


class VersionInfo(msgspec.Struct, kw_only=True):
    name: str
    version: int
    stage: Stage
    created_at: str
    stage_changed_at: str
    metrics: dict[str, float]
    bundle_sha256: str
    bundle_length: int
    runtimes: list[str]
    runtime_notes: dict[str, str] = {}
    """Why a runtime is not offered (``openvino``: could not convert, or answers differ)."""
    tolerance: dict[str, float] = {}
    """``atol`` and ``rtol`` within which every runtime must answer the test vectors."""
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    lineage: dict[str, Any]
    created_by: str = "system"
    zones: list[str] = []
    approvals: list[str] = []
    """Who approved this version for production (distinct approvers)."""
    approvals_required: int = 1
    """Distinct approvers this hub needs before a version enters production."""
    exposure_approvals: list[str] = []
    """Approvers who let this staging version take live traffic before production (rollout
    rings, A/B variants); it may once they meet ``approvals_required``, the author not counting."""


class ModelSummary(msgspec.Struct, kw_only=True):
    name: str
    created_at: str
    latest_version: int
    production_version: int | None


class ModelDetail(msgspec.Struct, kw_only=True):
    name: str
    created_at: str
    versions: list[VersionInfo]


class StageChange(msgspec.Struct, kw_only=True):
    stage: Stage
