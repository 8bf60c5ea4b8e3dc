"""Issue 16: ``appliance upgrade`` on a hub host, with real release archives of this tree.

Three hub releases are built from edited copies of the tree and signed with one release
key: N (this tree), N+1 (a version later, with a migration that adds a table) and N+2
(another version, whose migration waits on a gate file and whose hub answers /health with
500). The host is a folder (``--root``) with the hub's data, a copy of the demo-filled
database of release 0.1.0 (tests/fixtures/hub-0.1.0-demo); no systemd here, so the hub is
stopped and started by the operator's own commands (``--stop-command/--start-command``),
a real ``appliance hub serve`` of whichever release ``venv`` points at.

1. N is installed on the empty host (migrating the old database), then upgrades itself to
   N+1: every record is kept, the audit chain too (and goes on), the new table is there.
2. The upgrade to N+2 is killed (``kill -9``, its whole session) during the migration;
   ``appliance upgrade --recover`` restores the backup and N+1 runs again, data intact.
3. The upgrade to N+2 runs to its health check, which fails; the upgrade puts N+1 and its
   data back by itself.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from appliance.cli.demo.processes import free_port, wait_for
from hub import schema
from tests.harness.releases import build_release, edited, release_key, upgrade_argv
from tests.integration.test_upgrade import FIXTURE, counts, set_key_aside

pytestmark = [
    pytest.mark.integration,
    pytest.mark.release,
    pytest.mark.slow,
    pytest.mark.timeout(1200),
    pytest.mark.xdist_group("release-archives"),
]

PROBE_MIGRATION = '''"""A table release N+1 adds (the upgrade test's schema change).

Revision ID: 9001
Revises: {head}
"""

import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("upgrade_probe", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    op.drop_table("upgrade_probe")
'''
PROBE_MIGRATION = PROBE_MIGRATION.replace("{head}", schema.head())
"""It follows this tree's last migration."""

GATED_MIGRATION = '''"""Release N+2's migration: says it started, then waits for the test's go.

Revision ID: 9002
Revises: 9001
"""

import os
import time
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "9002"
down_revision = "9001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("gated_probe", sa.Column("id", sa.Integer(), primary_key=True))
    gate = Path(os.environ["UPGRADE_TEST_GATE"])
    gate.with_suffix(".started").touch()
    deadline = time.monotonic() + 600
    while not gate.with_suffix(".go").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def downgrade() -> None:
    op.drop_table("gated_probe")
'''

BROKEN_HEALTH = (
    "hub/app.py",
    '    return {"status": "ok", "version": __version__}',
    '    raise RuntimeError("this release is broken on purpose")',
)


@dataclass(frozen=True)
class Releases:
    public_key: Path
    n: Path
    n1: Path
    n2: Path


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Releases:
    work = tmp_path_factory.mktemp("releases")
    private, public = release_key(work / "key")
    versions = work / "versions"
    n1 = edited(
        work / "n1", "0.1.1", add={"hub/migrations/versions/r9001_probe.py": PROBE_MIGRATION}
    )
    n2 = edited(
        work / "n2",
        "0.1.2",
        replace=(BROKEN_HEALTH,),
        add={
            "hub/migrations/versions/r9001_probe.py": PROBE_MIGRATION,
            "hub/migrations/versions/r9002_gated.py": GATED_MIGRATION,
        },
    )
    versions.mkdir()
    return Releases(
        public_key=public,
        n=build_release(edited(work / "n", "0.1.0"), versions / "n", private),
        n1=build_release(n1, versions / "n1", private),
        n2=build_release(n2, versions / "n2", private),
    )


@dataclass(frozen=True)
class Host:
    root: Path
    data: Path
    port: int
    pidfile: Path
    gate: Path

    def argv(self, appliance_bin: Path, *args: str) -> list[str]:
        return upgrade_argv(
            appliance_bin,
            *args,
            root=self.root,
            data=self.data,
            serve=["hub", "serve", "--data-dir", str(self.data), "--port", str(self.port)],
            service="hub",
            pidfile=self.pidfile,
            health_url=f"http://127.0.0.1:{self.port}/health",
            health_timeout=60,
        )

    def upgrade(self, *args: str, gate_open: bool = True) -> subprocess.CompletedProcess[str]:
        if gate_open:
            self.gate.with_suffix(".go").touch()
        return subprocess.run(
            self.argv(self.root / "venv/bin/appliance", *args),
            capture_output=True,
            text=True,
            timeout=900,
            env=self.env(),
        )

    def env(self) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
        return {**clean, "UPGRADE_TEST_GATE": str(self.gate)}

    def version(self) -> str:
        return str(httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=5).json()["version"])

    def tables(self) -> set[str]:
        with sqlite3.connect(self.data / "hub.db") as connection:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            return {row[0] for row in rows}


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    data = tmp_path / "var" / "hub"
    data.parent.mkdir()
    shutil.copytree(FIXTURE, data, ignore=shutil.ignore_patterns("README.md"))
    set_key_aside(data)
    made = Host(tmp_path / "opt", data, free_port(), tmp_path / "hub.pid", tmp_path / "gate")
    try:
        yield made
    finally:
        if made.pidfile.exists():
            pid = int(made.pidfile.read_text())
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


AT_START = frozenset({"audit_entries", "publications"})
"""What a hub adds by itself when it starts (it publishes its TUF metadata, and audits it)."""


def _records(data: Path) -> dict[str, int]:
    """The number of records in each of the demo's tables (the migrations' own aside)."""
    return {k: v for k, v in counts(data / "hub.db").items() if not k.endswith("_probe")}


def _kept(before: dict[str, int], after: dict[str, int]) -> None:
    assert {k: v for k, v in after.items() if k not in AT_START} == {
        k: v for k, v in before.items() if k not in AT_START
    }
    assert all(after[k] >= before[k] for k in AT_START)


def _chain(data: Path) -> list[tuple[int, str, str]]:
    """The audit chain's links: (seq, previous hash, hash) of every entry, in order."""
    with sqlite3.connect(data / "hub.db") as connection:
        rows = connection.execute("SELECT seq, prev_hash, hash FROM audit_entries ORDER BY seq")
        return [(int(seq), str(prev), str(this)) for seq, prev, this in rows]


def _same_chain(before: list[tuple[int, str, str]], data: Path) -> None:
    """Every entry of ``before`` is still there, unchanged, and the chain goes on from it.

    (``appliance audit verify`` cannot run here: the fixture carries its hub's public key
    but not the private one, so it is set aside and the first hub started on it makes a key
    of its own, and the fixture's checkpoints are signed by the other. test_upgrade
    verifies the fixture's chain after a migration.)"""
    after = _chain(data)
    assert after[: len(before)] == before
    assert all(link[1] == earlier[2] for earlier, link in itertools.pairwise(after))


def test_install_upgrade_interrupted_and_failed_upgrades(releases: Releases, host: Host) -> None:
    key = ("--release-key", str(releases.public_key))
    first = subprocess.run(
        host.argv(Path(sys.executable).parent / "appliance", str(releases.n), *key),
        capture_output=True,
        text=True,
        timeout=900,
        env=host.env(),
    )
    assert first.returncode == 0, first.stdout + first.stderr
    assert host.version() == "0.1.0"
    demo, chain = _records(host.data), _chain(host.data)
    assert demo["model_versions"] == 3 and demo["audit_entries"] >= 76  # the fixture's

    # 1. N upgrades itself to N+1: the records, the audit chain and the new table
    upgraded = host.upgrade(str(releases.n1), *key)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    assert host.version() == "0.1.1"
    assert "upgrade_probe" in host.tables()
    after_n1 = _records(host.data)
    _kept(demo, after_n1)
    assert (host.root / "venv.previous").resolve().name.startswith("appliance-hub-0.1.0-")
    _same_chain(chain, host.data)

    # 2. kill -9 during N+2's migration, then --recover
    cut = subprocess.Popen(
        host.argv(host.root / "venv/bin/appliance", str(releases.n2), *key),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=host.env(),
        start_new_session=True,
    )
    try:
        wait_for("the migration", lambda: host.gate.with_suffix(".started").exists(), 600)
    finally:
        os.killpg(cut.pid, signal.SIGKILL)
        cut.wait()
    assert (host.root / "upgrade.json").exists()
    refused = host.upgrade(str(releases.n2), *key)
    assert refused.returncode != 0 and "--recover" in refused.stderr
    recovered = host.upgrade("--recover")
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert host.version() == "0.1.1"
    _kept(after_n1, _records(host.data))
    assert "gated_probe" not in host.tables()
    assert not (host.root / "upgrade.json").exists()
    _same_chain(chain, host.data)

    # 3. N+2 fails its health check: N+1 comes back by itself, with its data
    failed = host.upgrade(str(releases.n2), *key)
    assert failed.returncode != 0
    assert "rolled back" in failed.stderr and "Traceback" not in failed.stderr
    assert host.version() == "0.1.1"
    _kept(after_n1, _records(host.data))
    assert "gated_probe" not in host.tables()
    assert (host.root / "venv").resolve().name.startswith("appliance-hub-0.1.1-")
    assert not (host.root / "upgrade.json").exists()
    assert list(host.data.parent.glob("hub.failed-*"))  # what N+2 left, kept for a look
    _same_chain(chain, host.data)
