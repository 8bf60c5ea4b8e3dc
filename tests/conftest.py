"""Shared test helpers: a tiny ONNX model and a hub database over SQLite and PostgreSQL."""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def make_tiny_onnx(n_features: int = 4, n_classes: int = 2) -> bytes:
    """A deterministic classifier: ``input`` FLOAT [batch, n_features] -> MatMul -> Softmax.

    The output is ``probabilities`` FLOAT [batch, n_classes]; opset 17. Built with
    ``onnx.helper`` only (no torch), so it is fast and identical on every run.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = (
        np.arange(n_features * n_classes, dtype=np.float32).reshape(n_features, n_classes) / 10.0
        - 0.3
    )
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "weights"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", n_features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", n_classes])],
        initializer=[numpy_helper.from_array(weights, "weights")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="appliance-tests"
    )
    model.ir_version = 8  # readable by every onnxruntime/openvino we support
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def make_reference_npy(rows: int = 32, n_features: int = 4, *, seed: int = 0) -> bytes:
    """A ``.npy`` reference sample of shape [rows, n_features] (float32)."""
    sample = np.random.default_rng(seed).standard_normal((rows, n_features)).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, sample, allow_pickle=False)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def tiny_onnx() -> bytes:
    return make_tiny_onnx()


# -- database over both backends ---------------------------------------------------------

_postgres_state: dict[str, str | None] = {}


def _postgres_unreachable_reason() -> str | None:
    """None if PostgreSQL answers at POSTGRES_URL, else why not (checked once per session)."""
    if "reason" not in _postgres_state:
        try:
            import psycopg

            with psycopg.connect(
                host="127.0.0.1", port=5432, user="postgres", dbname="test", connect_timeout=3
            ) as conn:
                conn.execute("select 1")
            _postgres_state["reason"] = None
        except Exception as exc:  # any failure means "skip the postgres param"
            _postgres_state["reason"] = (
                f"PostgreSQL not reachable at 127.0.0.1:5432 (db 'test', user 'postgres'): {exc}"
            )
    return _postgres_state["reason"]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """A hub engine with the schema created: SQLite in a temp file, or a fresh PostgreSQL schema."""
    from sqlalchemy import text

    from hub.db import create_schema, make_engine

    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
        create_schema(eng)
        try:
            yield eng
        finally:
            eng.dispose()
        return

    reason = _postgres_unreachable_reason()
    if reason is not None:
        pytest.skip(reason)
    schema = f"t_{secrets.token_hex(6)}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    eng = make_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        create_schema(eng)
        yield eng
    finally:
        eng.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
