"""Roles and the permissions they grant: the one table every guard reads.

================  ==========================================================
role              may
================  ==========================================================
``admin``         manage users, enrol and revoke agents, upload the signed agent
                  releases agents upgrade to, read models, agents and the
                  audit log, export offline update bundles; cannot upload or
                  approve models
``ml-engineer``   upload models, move versions between candidate, staging
                  and archived, read models and agents
``approver``      approve versions into production (and take them out), export
                  offline update bundles, read models and agents
``auditor``       read and verify the audit log, write the residency record
                  of processing, read models and agents
``viewer``        read models and agents
``worker``        a GPU server's account: claim training jobs, read their
                  training sets, report progress and results
================  ==========================================================

Every role also holds ``features:read`` (definitions, snapshots, online
values and training sets, within the residency policy); ``ml-engineer`` alone
holds ``features:write`` (define, ingest, materialise). Every role but
``worker`` reads training jobs (``training:read``); ``ml-engineer`` submits,
cancels and schedules them (``training:submit``); ``worker`` alone works them
(``training:work``), and only for the job it holds the lease of.

Agents are not users: an enrolled agent holds only ``agent:self`` (read what is
meant for it, write its own reports).
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    MODELS_READ = "models:read"
    MODELS_WRITE = "models:write"
    MODELS_STAGE = "models:stage"
    MODELS_APPROVE = "models:approve"
    AGENTS_READ = "agents:read"
    AGENTS_ENROL = "agents:enrol"
    AGENTS_REVOKE = "agents:revoke"
    AGENTS_UPGRADE = "agents:upgrade"
    USERS_MANAGE = "users:manage"
    AUDIT_READ = "audit:read"
    RESIDENCY_REPORT = "residency:report"
    AGENT_SELF = "agent:self"
    FEATURES_READ = "features:read"
    FEATURES_WRITE = "features:write"
    UPDATES_EXPORT = "updates:export"
    TRAINING_READ = "training:read"
    TRAINING_SUBMIT = "training:submit"
    TRAINING_WORK = "training:work"
    INFERENCE_KEYS = "inference-keys:manage"


P = Permission

ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "admin": frozenset(
        {
            P.USERS_MANAGE,
            P.AGENTS_READ,
            P.AGENTS_ENROL,
            P.AGENTS_REVOKE,
            P.AGENTS_UPGRADE,
            P.MODELS_READ,
            P.AUDIT_READ,
            P.FEATURES_READ,
            P.UPDATES_EXPORT,
            P.TRAINING_READ,
            P.INFERENCE_KEYS,
        }
    ),
    "ml-engineer": frozenset(
        {
            P.MODELS_READ,
            P.MODELS_WRITE,
            P.MODELS_STAGE,
            P.AGENTS_READ,
            P.FEATURES_READ,
            P.FEATURES_WRITE,
            P.TRAINING_READ,
            P.TRAINING_SUBMIT,
        }
    ),
    "approver": frozenset(
        {
            P.MODELS_READ,
            P.MODELS_APPROVE,
            P.AGENTS_READ,
            P.FEATURES_READ,
            P.UPDATES_EXPORT,
            P.TRAINING_READ,
        }
    ),
    "auditor": frozenset(
        {
            P.AUDIT_READ,
            P.RESIDENCY_REPORT,
            P.MODELS_READ,
            P.AGENTS_READ,
            P.FEATURES_READ,
            P.TRAINING_READ,
        }
    ),
    "viewer": frozenset({P.MODELS_READ, P.AGENTS_READ, P.FEATURES_READ, P.TRAINING_READ}),
    "worker": frozenset({P.TRAINING_WORK}),
}
ROLES: tuple[str, ...] = tuple(ROLE_PERMISSIONS)
AGENT_PERMISSIONS: frozenset[Permission] = frozenset({P.AGENT_SELF})


def permissions_for(roles: frozenset[str] | set[str] | list[str]) -> frozenset[Permission]:
    granted: set[Permission] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS.get(role, frozenset())
    return frozenset(granted)


def roles_with(permission: Permission) -> list[str]:
    return [role for role, perms in ROLE_PERMISSIONS.items() if permission in perms]
