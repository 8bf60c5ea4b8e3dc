"""The pure series behind the new tabs' plots, and the plots themselves, without a hub."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual_plotext.plot import Plot

from tests.tui.fixed_hub import FixedHub
from tests.tui.fixed_records import WORKERS
from tui.format import drift as fd
from tui.format import releases as fr
from tui.format import training as ft
from tui.records import DriftReport, Experiment, appended, convert, read_after
from tui.widgets import plots
from tui.widgets.chart import Chart, Drawing, SafePlot

HUB = FixedHub()


def drawings() -> list[Drawing]:
    busy = ft.gpu_history(WORKERS[0])
    assert busy is not None
    experiment = convert(HUB.list_experiments()[1], Experiment, "an experiment")
    bars = [fr.variant_bar(v, experiment.metric) for v in experiment.variants]
    reports = convert(HUB.drift_reports(agent_id=2, model="churn"), list[DriftReport], "reports")
    series = fd.p_series(reports)
    assert series is not None
    return [
        plots.gpu_history("dxb-gpu-01", busy),
        plots.variant_rates(bars, percent=True),
        plots.p_values(series),
    ]


@pytest.mark.parametrize("index", range(3), ids=["gpu", "variants", "p-values"])
def test_a_plot_builds_the_same_on_every_repaint(index: int) -> None:
    """A widget builds its figure again on each repaint (plotext's log scale would not)."""
    plt = Plot()
    plt.plotsize(80, 12)
    drawings()[index](plt)
    assert plt.build() == plt.build()


def test_wilson_interval_of_a_rate() -> None:
    low, high = fr.wilson(50, 100)
    assert (round(low, 4), round(high, 4)) == (0.4038, 0.5962)
    assert fr.wilson(0, 0) == (0.0, 1.0)


def test_gpu_history_is_minutes_before_the_latest_reading() -> None:
    busy = ft.gpu_history(WORKERS[0])
    assert busy is not None and busy.gpus == 2
    assert busy.minutes[-1] == 0.0 and busy.minutes[0] == pytest.approx(-9.83, abs=0.01)
    assert ft.gpu_history(WORKERS[2]) is None
    assert ft.worker_note(WORKERS[2]) == "dxb-laptop: no GPU (it trains on CPU; nothing to plot)"
    assert ft.progress_bar(0.625) == "██████░░░░  62%"


def test_drift_series_marks_drifted_windows_and_the_bonferroni_line() -> None:
    reports = convert(HUB.drift_reports(agent_id=2, model="churn"), list[DriftReport], "reports")
    series = fd.p_series(reports)
    assert series is not None
    assert (series.unit, series.when[-1], series.threshold) == ("hours", 0.0, 0.05 / 4)
    assert len(series.drifted_when) == sum(1 for r in reports if r.drifted) == 12


def test_following_a_paged_history_keeps_the_latest() -> None:
    history = list(range(1, 251))
    pages: list[int] = []

    def page(after: int) -> list[int]:
        pages.append(after)
        return [n for n in history if n > after][:100]

    got = read_after(page, 0, int, full=100, keep=30, max_pages=20)
    assert got == history[-30:] and pages == [0, 100, 200]
    assert appended(got, [249, 250, 251], int, 30)[-2:] == [250, 251]


class _Broken(App[None]):
    def compose(self) -> ComposeResult:
        yield Chart(id="chart")


@pytest.mark.anyio
async def test_a_plot_that_plotext_cannot_draw_reads_as_a_line() -> None:
    app = _Broken()
    async with app.run_test(size=(60, 12)) as pilot:
        chart = app.query_one(Chart)
        chart.draw(lambda plt: (plt.yscale("log"), plt.plot([1.0, 2.0], [-1.0, 0.0])))
        await pilot.pause()
        assert app.is_running and chart.has_class("plotted")
        assert "could not be drawn" in str(app.query_one(SafePlot).render())
