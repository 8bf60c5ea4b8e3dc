"""The agent's outbox: durable, idempotent, bounded, and honest about what it dropped."""

from __future__ import annotations

from agent.outbox import Outbox


def test_reports_survive_a_restart_and_leave_only_when_acknowledged(tmp_path):
    box = Outbox(tmp_path)
    for i in range(5):
        assert box.put("serving", {"n": i}, key=f"k{i}")
    box.close()
    again = Outbox(tmp_path)  # the agent restarted
    pending = again.pending()
    assert [r.key for r in pending] == ["k0", "k1", "k2", "k3", "k4"]
    assert pending[2].body == {"n": 2}
    again.acknowledge(["k0", "k1"])
    assert [r.key for r in again.pending(limit=2)] == ["k2", "k3"]
    assert again.depth() == 3


def test_the_same_key_is_queued_once(tmp_path):
    box = Outbox(tmp_path)
    assert box.put("drift", {"a": 1}, key="same")
    assert not box.put("drift", {"a": 2}, key="same")
    (only,) = box.pending()
    assert only.body == {"a": 1}


def test_a_full_outbox_drops_the_oldest_and_counts_them(tmp_path, caplog):
    box = Outbox(tmp_path, max_reports=3)
    for i in range(5):
        box.put("serving", {"n": i}, key=f"k{i}")
    assert [r.key for r in box.pending()] == ["k2", "k3", "k4"]
    assert box.dropped() == 2
    assert "dropped the 1 oldest" in caplog.text


def test_acknowledging_unknown_keys_is_harmless(tmp_path):
    box = Outbox(tmp_path)
    box.put("serving", {}, key="a")
    box.acknowledge(["zzz", "a"])
    assert box.depth() == 0


def test_refused_reports_move_aside_and_never_block_the_queue(tmp_path):
    """Issue 14, finding 4: the hub refusing the head of the queue wedged every report."""
    box = Outbox(tmp_path, max_dead_letters=2)
    for i in range(4):
        box.put("drift", {"n": i}, key=f"k{i}")
    assert box.dead_letter([("k0", "body: p_values must be finite"), ("gone", "?")]) == 1
    assert [r.key for r in box.pending()] == ["k1", "k2", "k3"]
    box.dead_letter([("k1", "second"), ("k2", "third")])
    assert box.dead_letter_count() == 2  # bounded: the oldest went
    assert [d["key"] for d in box.dead_letters()] == ["k2", "k1"]
    assert box.dead_letters()[0]["reason"] == "third"
    box.close()
    assert Outbox(tmp_path).dead_letter_count() == 2  # kept across a restart


def test_the_outbox_and_the_hub_database_are_readable_by_their_owner_only(tmp_path):
    """Issue 14, finding 12: both were created 0644 outside systemd."""
    import os

    from hub.db import make_engine

    umask = os.umask(0o022)  # what a shell gives: files 0644 unless made otherwise
    try:
        box = Outbox(tmp_path / "agent")
        box.put("serving", {"n": 1}, key="k")
        engine = make_engine(f"sqlite:///{tmp_path / 'hub' / 'hub.db'}")
        with engine.connect() as connection:
            connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            connection.commit()
    finally:
        os.umask(umask)
    for path in (tmp_path / "agent" / "outbox.sqlite", tmp_path / "hub" / "hub.db"):
        assert path.stat().st_mode & 0o777 == 0o600, path
    engine.dispose()
