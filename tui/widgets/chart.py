"""A plot that can instead say, in words, why there is nothing to plot."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot

Drawing = Callable[[Plot], None]
"""Draws onto a cleared plotext figure (see :mod:`tui.widgets.plots`)."""


class SafePlot(PlotextPlot):
    """A plotext plot whose own failures (plotext has a few) read as one line, not a crash."""

    def render(self) -> RenderResult:
        try:
            return super().render()
        except Exception as exc:  # plotext raises IndexError, ValueError… on odd data
            return Text(f"(the plot could not be drawn: {exc!r})", style="italic")


class Chart(Vertical):
    """Either a plotext plot (:meth:`draw`) or a line of text (:meth:`say`)."""

    DEFAULT_CSS = """
    Chart { height: 1fr; }
    Chart > .chart-note { height: auto; padding: 0 1; color: $text-muted; }
    Chart > PlotextPlot { display: none; }
    Chart.plotted > PlotextPlot { display: block; }
    Chart.plotted > .chart-note { display: none; }
    """

    def __init__(self, note: str = "", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.first_note = note

    def compose(self) -> ComposeResult:
        yield Static(self.first_note, classes="chart-note", markup=False)
        yield SafePlot()

    @property
    def note(self) -> str:
        """What the chart says instead of a plot (empty while it shows one)."""
        return "" if self.has_class("plotted") else str(self.query_one(Static).render())

    def say(self, text: str) -> None:
        self.remove_class("plotted")
        self.query_one(Static).update(text)

    def draw(self, drawing: Drawing) -> None:
        plot = self.query_one(PlotextPlot)
        plot.plt.clear_figure()
        drawing(plot.plt)
        self.add_class("plotted")
        plot.refresh()
