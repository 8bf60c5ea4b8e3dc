"""The residency policy file, its decisions, and the gate that audits every one of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session

from appliance.errors import ConfigError, InvalidInputError, ResidencyRefusedError
from appliance.security.keys import KeyPair
from hub.audit.service import AuditLog
from hub.db import session_scope
from hub.registry.records import ModelRecord
from hub.residency.gate import ACTION, ResidencyGate
from hub.residency.policy import ResidencyPolicy

POLICY = """
zones = ["ae-dxb", "ae-auh", "ae-shj"]

[read]
ae-dxb = ["ae-dxb", "ae-shj"]
ae-auh = ["ae-auh"]

[deploy]
ae-dxb = ["ae-dxb", "ae-shj"]
ae-auh = ["ae-auh"]
"""


def load(tmp_path: Path, text: str) -> ResidencyPolicy:
    path = tmp_path / "residency.toml"
    path.write_text(text)
    return ResidencyPolicy.load(path)


@pytest.fixture
def policy(tmp_path: Path) -> ResidencyPolicy:
    return load(tmp_path, POLICY)


# -- loading -----------------------------------------------------------------------------


def test_a_good_policy_loads(policy: ResidencyPolicy, tmp_path: Path) -> None:
    assert policy.zones == ("ae-dxb", "ae-auh", "ae-shj")
    assert policy.deploy["ae-auh"] == frozenset({"ae-auh"})
    assert policy.read["ae-dxb"] == frozenset({"ae-dxb", "ae-shj"})
    assert policy.source == str(tmp_path / "residency.toml")


@pytest.mark.parametrize(
    "text, complaint",
    [
        ('zones = ["ae-dxb"\n[deploy', "not valid TOML"),
        ("[deploy]\nae-dxb = ['ae-dxb']\n", "'zones'"),
        ("zones = []\n", "'zones'"),
        ('zones = "ae-dxb"\n', "'zones'"),
        ('zones = ["ae-dxb", 7]\n', "'zones'"),
        ('zones = ["ae-dxb"]\n[deploy]\nae-dxb = ["ae-auh"]\n', "ae-auh"),
        ('zones = ["ae-dxb"]\n[deploy]\nae-auh = ["ae-dxb"]\n', "ae-auh"),
        ('zones = ["ae-dxb"]\n[read]\nae-dxb = ["mars-1"]\n', "mars-1"),
        ('zones = ["ae-dxb"]\n[read]\nae-dxb = "ae-dxb"\n', "ae-dxb"),
        ('zones = ["ae-dxb"]\ndeploy = ["ae-dxb"]\n', "[deploy] must be a table"),
    ],
)
def test_a_bad_policy_is_a_config_error_naming_the_problem(
    tmp_path: Path, text: str, complaint: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, text)
    assert complaint in str(raised.value)


def test_a_missing_policy_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no residency policy"):
        ResidencyPolicy.load(tmp_path / "nowhere.toml")


def test_unknown_zones_are_refused_by_check_zones(policy: ResidencyPolicy) -> None:
    assert policy.check_zones(["ae-auh", "ae-auh"], "zones") == ("ae-auh",)
    with pytest.raises(InvalidInputError, match="mars-1"):
        policy.check_zones(["ae-dxb", "mars-1"], "zones")
    with pytest.raises(InvalidInputError, match="none given"):
        policy.check_zones([], "zones")


# -- deciding ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flow, subject, objects, allowed, rule",
    [
        ("deploy", "ae-auh", ["ae-auh"], True, "deploy.ae-auh"),
        ("deploy", "ae-dxb", ["ae-auh"], False, "deploy.ae-auh"),
        ("deploy", "ae-shj", ["ae-dxb"], True, "deploy.ae-dxb"),
        ("deploy", "ae-auh", ["ae-dxb"], False, "deploy.ae-dxb"),
        # ae-shj has no [deploy] entry: its data stays in ae-shj
        ("deploy", "ae-shj", ["ae-shj"], True, "deploy.ae-shj"),
        ("deploy", "ae-dxb", ["ae-shj"], False, "deploy.ae-shj"),
        ("read", "ae-dxb", ["ae-shj"], True, "read.ae-dxb"),
        ("read", "ae-auh", ["ae-dxb"], False, "read.ae-auh"),
        ("read", "ae-shj", ["ae-dxb"], False, "read.ae-shj"),
        ("read", "ae-shj", ["ae-shj"], True, "read.ae-shj"),
    ],
)
def test_decide_names_the_rule(
    policy: ResidencyPolicy,
    flow: Any,
    subject: str,
    objects: list[str],
    allowed: bool,
    rule: str,
) -> None:
    decision = policy.decide(flow, subject, objects)
    assert (decision.allowed, decision.rule) == (allowed, rule)
    assert (decision.flow, decision.subject_zone, decision.object_zones) == (
        flow,
        subject,
        tuple(objects),
    )
    if not allowed:
        assert rule in decision.reason and subject in decision.reason


@pytest.mark.parametrize("flow", ["read", "deploy"])
def test_an_unknown_subject_zone_is_refused(policy: ResidencyPolicy, flow: Any) -> None:
    decision = policy.decide(flow, "mars-1", ["ae-dxb"])
    assert not decision.allowed
    assert decision.rule == "unknown-zone"
    assert "mars-1" in decision.reason


def test_one_refusing_data_zone_refuses_the_whole_flow(policy: ResidencyPolicy) -> None:
    # trained on data from ae-dxb (may go to ae-shj) and ae-auh (may not)
    decision = policy.decide("deploy", "ae-shj", ["ae-dxb", "ae-auh"])
    assert not decision.allowed and decision.rule == "deploy.ae-auh"
    reverse = policy.decide("deploy", "ae-shj", ["ae-auh", "ae-dxb"])
    assert not reverse.allowed and reverse.rule == "deploy.ae-auh"
    both = policy.decide("deploy", "ae-dxb", ["ae-dxb", "ae-shj"])
    assert not both.allowed and both.rule == "deploy.ae-shj"
    read = policy.decide("read", "ae-dxb", ["ae-dxb", "ae-auh"])
    assert not read.allowed and read.rule == "read.ae-dxb" and "ae-auh" in read.reason


def test_the_single_zone_default_allows_only_its_zone() -> None:
    policy = ResidencyPolicy.single_zone("ae-dxb")
    assert policy.decide("deploy", "ae-dxb", ["ae-dxb"]).allowed
    assert policy.decide("deploy", "ae-auh", ["ae-dxb"]).rule == "unknown-zone"


# -- the gate ----------------------------------------------------------------------------


@pytest.fixture
def gate(engine: Any, policy: ResidencyPolicy) -> ResidencyGate:
    return ResidencyGate(engine, policy, AuditLog(KeyPair(Ed25519PrivateKey.generate())))


def decisions(gate: ResidencyGate) -> list[Any]:
    with Session(gate.engine) as session:
        return gate.audit.list(session, action=ACTION, limit=1000)


def models(gate: ResidencyGate) -> list[str]:
    with Session(gate.engine) as session:
        return [m.name for m in session.query(ModelRecord).all()]


def test_an_allowed_flow_is_audited_in_the_callers_transaction(gate: ResidencyGate) -> None:
    with session_scope(gate.engine) as session:
        decision = gate.check(
            session,
            flow="deploy",
            actor="agent:edge-auh",
            subject_zone="ae-auh",
            object_zones=["ae-auh"],
            target="model:churn/1 to agent:edge-auh",
            source="192.0.2.9",
        )
        assert decision.allowed
        session.add(ModelRecord(name="churn"))
    [entry] = decisions(gate)
    assert (entry.actor, entry.outcome, entry.target, entry.source) == (
        "agent:edge-auh",
        "allowed",
        "model:churn/1 to agent:edge-auh",
        "192.0.2.9",
    )
    assert entry.detail["rule"] == "deploy.ae-auh"
    assert entry.detail["to_zone"] == "ae-auh" and entry.detail["data_zones"] == ["ae-auh"]
    assert models(gate) == ["churn"]


def test_an_allowed_flow_whose_transaction_rolls_back_leaves_no_record(
    gate: ResidencyGate,
) -> None:
    """The record and the flow commit together: no 'allowed' for a flow that never happened."""
    with pytest.raises(RuntimeError), session_scope(gate.engine) as session:
        gate.check(
            session,
            flow="deploy",
            actor="agent:edge-auh",
            subject_zone="ae-auh",
            object_zones=["ae-auh"],
            target="model:churn/1 to agent:edge-auh",
        )
        raise RuntimeError("the flow failed after the check")
    assert decisions(gate) == []


def test_a_refusal_raises_and_its_record_survives_the_rollback(gate: ResidencyGate) -> None:
    with pytest.raises(ResidencyRefusedError) as raised, session_scope(gate.engine) as session:
        session.add(ModelRecord(name="leaked"))  # the caller's work, rolled back
        gate.check(
            session,
            flow="deploy",
            actor="agent:edge-dxb",
            subject_zone="ae-dxb",
            object_zones=["ae-auh"],
            target="model:churn/1 to agent:edge-dxb",
        )
    assert raised.value.rule == "deploy.ae-auh"
    assert "deploy.ae-auh" in raised.value.message
    [entry] = decisions(gate)
    assert (entry.actor, entry.outcome, entry.target) == (
        "agent:edge-dxb",
        "refused",
        "model:churn/1 to agent:edge-dxb",
    )
    assert entry.detail["rule"] == "deploy.ae-auh" and entry.detail["flow"] == "deploy"
    assert models(gate) == []


def test_an_unknown_zone_refusal_is_audited_with_its_rule(gate: ResidencyGate) -> None:
    with pytest.raises(ResidencyRefusedError) as raised, session_scope(gate.engine) as session:
        gate.check(
            session,
            flow="read",
            actor="user:alice",
            subject_zone="mars-1",
            object_zones=["ae-dxb"],
            target="dataset:claims",
        )
    assert raised.value.rule == "unknown-zone"
    assert [(e.outcome, e.detail["rule"]) for e in decisions(gate)] == [("refused", "unknown-zone")]
