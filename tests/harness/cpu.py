"""CPU seconds by test module, printed at the end of a run: where ``make test``'s time goes.

On 2 cores the suite is CPU-bound, so a module's CPU (the test process's own and that of
the children it has reaped: hubs, agents, workers, pip) says more than its wall time,
which depends on what ran beside it. Each phase's CPU travels in the report's
``user_properties``, so pytest-xdist's workers report to the process that prints. Children
are reaped when a module's fixtures stop them, so their CPU falls to that module's last
teardown: still the module's.
"""

from __future__ import annotations

import resource
from collections import defaultdict
from collections.abc import Generator

import pytest
from _pytest.terminal import TerminalReporter

CPU_PROPERTY = "cpu_s"
SHOWN = 25

_mark: list[float] = []
_by_module: defaultdict[str, float] = defaultdict(float)


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime


def pytest_collection_finish(session: pytest.Session) -> None:
    """Counting starts after collection (importing the test modules is no module's cost)."""
    _mark[:] = [_cpu_seconds()]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    now = _cpu_seconds()
    spent, _mark[:] = now - (_mark[0] if _mark else now), [now]
    outcome.get_result().user_properties.append((CPU_PROPERTY, spent))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for name, value in report.user_properties:
        if name == CPU_PROPERTY and isinstance(value, float):
            _by_module[report.nodeid.split("::", 1)[0]] += value


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    if not _by_module:
        return
    total = sum(_by_module.values())
    terminalreporter.section(f"CPU by module ({total:.0f} s in all, the {SHOWN} most)")
    for module, seconds in sorted(_by_module.items(), key=lambda kv: -kv[1])[:SHOWN]:
        terminalreporter.write_line(f"{seconds:8.1f} s  {100 * seconds / total:4.1f}%  {module}")
