"""The processes of a ``--workers N`` agent add up one another's counts (agent.peers)."""

from __future__ import annotations

from agent.peers import Peers, Share

KEY = ("appliance_agent_requests_total", "m", "1", "", "ok")


def _share(pid: int, role: str, requests: float, last: float = 0.0) -> Share:
    return Share(pid=pid, role=role, samples=[(KEY, requests)], last=[("m", 1, last)])


def test_each_process_sees_the_others_counts_and_the_owners_state(tmp_path):
    owner, serving = Peers(tmp_path, "owner", pid=10), Peers(tmp_path, "serving", pid=11)
    owner.clear()
    owner.publish(Share(pid=10, role="owner", samples=[(KEY, 3.0)], hub_reachable=True))
    serving.publish(_share(11, "serving", 5.0))
    assert [(s.pid, dict(s.samples)[KEY]) for s in owner.others()] == [(11, 5.0)]
    seen = serving.owner()
    assert seen is not None and seen.hub_reachable and dict(seen.samples)[KEY] == 3.0


def test_an_exited_process_counts_on_and_totals_never_go_back(tmp_path):
    owner = Peers(tmp_path, "owner", pid=10)
    owner.clear()
    for pid, requests, when in ((11, 5.0, 100.0), (12, 7.0, 50.0)):
        Peers(tmp_path, "serving", pid=pid).publish(_share(pid, "serving", requests, when))
        owner.retire(pid)
    (retired,) = owner.others()
    assert retired.role == "retired" and dict(retired.samples)[KEY] == 12.0
    assert retired.last == [("m", 1, 100.0)]
    assert not (tmp_path / "11.json").exists()
    owner.clear()  # a new run of the agent counts from zero
    assert owner.others() == []
