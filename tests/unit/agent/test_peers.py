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


def test_probation_counts_the_serving_processes_requests_of_the_version():
    from agent.probation import Probation, ProbationPolicy

    counted = [(5.0, 1.0)]  # the version answered before its probation began (an A/B extra)
    probation = Probation(ProbationPolicy(requests=20), elsewhere=lambda: counted[-1])
    probation.record(True)
    counted.append((5.0 + 18, 1.0))
    assert probation.verdict() is None  # 19 of 20
    counted.append((5.0 + 19, 1.0))
    assert probation.verdict() == "pass"
    failing = Probation(ProbationPolicy(max_failures=2), elsewhere=lambda: counted[-1])
    counted.append((counted[-1][0] + 3, 3.0))  # two failures elsewhere since it began
    assert failing.verdict() == "fail" and failing.summary().startswith("2 of its first 5")


def test_a_process_counts_a_versions_successes_and_failures_elsewhere(tmp_path):
    owner = Peers(tmp_path, "owner", pid=10)
    owner.clear()
    fail = ("appliance_agent_requests_total", "m", "1", "", "error")
    other = ("appliance_agent_requests_total", "m", "2", "", "ok")
    samples = [(KEY, 4.0), (fail, 1.0), (other, 9.0)]
    Peers(tmp_path, "serving", pid=11).publish(Share(pid=11, role="serving", samples=samples))
    assert owner.requests("m", 1) == (4.0, 1.0) and owner.requests("m", 3) == (0.0, 0.0)
