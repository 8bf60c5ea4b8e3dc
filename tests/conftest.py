"""Shared fixtures: a tiny ONNX model, a hub database over SQLite and PostgreSQL, and (from
:mod:`tests.harness.site`) a live site of real hub and agent processes."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.models import make_tiny_onnx

pytest_plugins = ("tests.harness.site", "tests.harness.cpu")

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def tiny_onnx() -> bytes:
    return make_tiny_onnx()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """For parallel runs (``make test``: pytest-xdist, ``--dist loadgroup``).

    A module's tests stay in one process: they share its module-scoped hub and agents,
    started once, and some build on what an earlier test of the module left
    (test_rollouts' versions). This runs before xdist reads the groups; a test's own
    ``xdist_group`` mark wins, and such groups (several modules: the release archives')
    go first, then the modules with tests marked ``slow``: a group of minutes that starts
    last is what the whole run waits for (``make test`` keeps this order,
    ``--no-loadscope-reorder``)."""
    grouped = {item.nodeid for item in items if item.get_closest_marker("xdist_group")}
    for item in items:
        if item.nodeid not in grouped:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
    slow = {item.nodeid.split("::", 1)[0] for item in items if item.get_closest_marker("slow")}
    items.sort(
        key=lambda item: (item.nodeid not in grouped, item.nodeid.split("::", 1)[0] not in slow)
    )


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


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards (skipped where
    PostgreSQL does not answer)."""
    from sqlalchemy import text

    from hub.db import make_engine

    reason = _postgres_unreachable_reason()
    if reason is not None:
        pytest.skip(reason)
    name = f"t_{secrets.token_hex(6)}"
    admin = make_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """A hub engine with the schema created: SQLite in a temp file, or a fresh PostgreSQL schema."""
    from sqlalchemy import text

    from hub.db import make_engine
    from hub.schema import prepare

    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
        prepare(eng)
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
        prepare(eng)
        yield eng
    finally:
        eng.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
