"""Alembic's environment for the hub: :mod:`hub.schema` passes the connection in, so the
URL, credentials and engine options are the hub's own (never an ``alembic.ini``)."""

from __future__ import annotations

from alembic import context

from hub.schema import configure_context

configure_context(context.config.attributes["connection"])
with context.begin_transaction():
    context.run_migrations()
