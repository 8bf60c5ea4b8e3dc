"""What each chart draws, from the pure series in ``tui/format_*.py``.

Every function returns a :data:`tui.widgets.chart.Drawing`; the chart clears the
figure first and sizes it to the widget, so these only add data, axes and labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from textual_plotext.plot import Plot

from tui.format.drift import PSeries
from tui.format.releases import Bar
from tui.format.training import GpuSeries
from tui.widgets.chart import Drawing

LINE = "braille"


def gpu_history(name: str, series: GpuSeries) -> Drawing:
    """Utilisation (left axis, 0-100 %) and temperature (right axis, °C) over time."""
    mean = " (mean)" if series.gpus > 1 else ""
    hottest = " (hottest)" if series.gpus > 1 else ""

    def draw(plt: Plot) -> None:
        plt.plot(series.minutes, series.util_pct, marker=LINE, color="cyan", label=f"util %{mean}")
        plt.plot(
            series.minutes,
            series.temperature_c,
            marker=LINE,
            color="orange",
            label=f"°C{hottest}",
            yside="right",
        )
        plt.ylim(0, 100)
        gpus = f"{series.gpus} GPUs" if series.gpus > 1 else "GPU"
        plt.title(f"{name}, {gpus}: utilisation % (left), temperature °C (right)")
        plt.xlabel("minutes before the latest reading")

    return draw


def variant_rates(bars: Sequence[Bar], *, percent: bool) -> Drawing:
    """A bar per variant from a floor under the lowest, its 95% interval as a whisker."""
    scale = 100.0 if percent else 1.0
    lows = [(b.low if b.low is not None else b.mean) * scale for b in bars]
    highs = [(b.high if b.high is not None else b.mean) * scale for b in bars]
    spread = max(max(highs) - min(lows), abs(max(highs)) * 0.05, 1e-9)
    floor = min(lows) - spread * 0.5
    if percent:
        floor = max(floor, 0.0)

    def draw(plt: Plot) -> None:
        xs = [float(x) for x in range(1, len(bars) + 1)]
        plt.bar(xs, [b.mean * scale for b in bars], width=0.4, minimum=floor, color="blue")
        for x, b, low, high in zip(xs, bars, lows, highs, strict=True):
            if b.low is None:
                continue
            plt.plot([x + 0.3, x + 0.3], [low, high], marker="│", color="red")
            plt.scatter([x + 0.3], [b.mean * scale], marker="◆", color="red")
        plt.xticks(xs, [b.label for b in bars])
        plt.xlim(0.5, len(bars) + 0.7)
        plt.ylim(floor, max(highs) + spread * 0.3)
        unit = "rate %" if percent else "mean"
        whisker = ", red: 95% interval (Wilson)" if percent else ""
        plt.title(f"{unit} per variant{whisker}")

    return draw


def p_values(series: PSeries) -> Drawing:
    """Min p-value per window on a log axis, drifted windows marked, the significance line.

    The axis is log10(p) on a linear scale, labelled in powers of ten: plotext's own
    log scale transforms the data in place on every build, and a widget builds again
    on each repaint.
    """
    logged = [math.log10(p) for p in series.p]
    threshold = math.log10(series.threshold)
    bottom = min(math.floor(min([*logged, threshold])), -2)
    step = max(1, -bottom // 4)
    decades = list(range(0, bottom - 1, -step))

    def draw(plt: Plot) -> None:
        plt.plot(series.when, logged, marker=LINE, color="cyan", label="min p")
        if series.drifted_when:
            plt.scatter(
                series.drifted_when,
                [math.log10(p) for p in series.drifted_p],
                marker="x",
                color="red",
                label="drifted",
            )
        plt.hline(threshold, color="orange")
        plt.yticks([float(d) for d in decades], ["1" if d == 0 else f"1e{d}" for d in decades])
        plt.ylim(bottom, 0)
        plt.xlabel(f"{series.unit} before the latest window; orange: significance")

    return draw
