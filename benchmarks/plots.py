"""The rules every benchmark figure follows, so a reader sees the result and not the axis software's choices.

- Accuracy is drawn with its 95 % interval as error bars, on an axis from a round floor (a multiple of
  ``ACCURACY_STEP_PP``, at least ``ACCURACY_MIN_SPAN_PP`` wide): two files 0.01 pp apart look the same, as they
  are, and never like a cliff.
- Candidates are told apart by colour and marker in a legend outside the data, not by labels beside points
  (which land on each other when two candidates are close).
- Batch sizes and client counts sit on a log₂ axis ticked with the plain values measured (1, 2, 4, … 64: not
  2⁰…2⁶); stream counts on integer ticks; latency, throughput and frame-rate axes start at zero.
- Legend and label text is written for people: ``end_to_end`` reads "end to end".

matplotlib is imported by the callers, lazily; these helpers only receive its objects. Confusion matrices follow
``calibration.figures`` (below this package, shared with the accuracy gate).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from formats.writer import write_figure

ACCURACY_STEP_PP = 5.0  # the accuracy axis starts and ends on a multiple of this
ACCURACY_MIN_SPAN_PP = 5.0  # and is never narrower
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*", "<", ">")


def readable(label: str) -> str:
    """A key as people read it: ``end_to_end`` → ``end to end``, ``in_process p50`` → ``in process p50``."""
    return label.replace("_", " ")


def accuracy_limits(lows: Sequence[float], highs: Sequence[float]) -> tuple[float, float]:
    """The accuracy axis (percent) from the intervals' ends: round floor and ceiling, at least 5 pp apart, 0–100."""
    step = ACCURACY_STEP_PP
    low = max(0.0, math.floor((min(lows) - 0.5) / step) * step)
    high = min(100.0, math.ceil((max(highs) + 0.5) / step) * step)
    if high - low < ACCURACY_MIN_SPAN_PP:
        low = max(0.0, high - ACCURACY_MIN_SPAN_PP)
        high = min(100.0, low + ACCURACY_MIN_SPAN_PP)
    return low, high


def accuracy_axis(ax: Any, lows: Sequence[float], highs: Sequence[float], label: str = "accuracy (%)") -> None:
    """Set the accuracy axis from the intervals (percent) with plain ticks (92, 93, …; no offset, no 1e-2)."""
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    ax.set_ylim(*accuracy_limits(lows, highs))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    formatter = ScalarFormatter(useOffset=False)
    formatter.set_scientific(False)
    ax.yaxis.set_major_formatter(formatter)
    ax.set_ylabel(label)


def style(index: int) -> dict[str, Any]:
    """Colour and marker of the ``index``-th candidate (the same candidate keeps its look across panels)."""
    return {"color": f"C{index % 10}", "marker": MARKERS[index % len(MARKERS)]}


def plain_log2_axis(ax: Any, values: Sequence[float], label: str, axis: str = "x") -> None:
    """A log₂ axis ticked at ``values`` written plainly (1, 2, 4, 64), no minor ticks, no powers of two."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ticks = sorted({float(v) for v in values if v > 0})
    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log", base=2)
    target.set_major_locator(FixedLocator(ticks))
    target.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    target.set_minor_locator(NullLocator())
    (ax.set_xlabel if axis == "x" else ax.set_ylabel)(label)
    if len(ticks) == 1:  # one point: a log axis would zoom into nothing
        (ax.set_xlim if axis == "x" else ax.set_ylim)(ticks[0] / 2, ticks[0] * 2)


def integer_axis(ax: Any, values: Sequence[int], label: str) -> None:
    """An x axis ticked only at the integers measured (1, 2, 3 streams; never 1.5)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter

    ticks = sorted({int(v) for v in values})
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.0f}"))
    ax.set_xlim(min(ticks) - 0.5, max(ticks) + 0.5)
    ax.set_xlabel(label)


def zero_based(ax: Any) -> None:
    """Start the y axis at 0 (a rate or a time read against its own zero), keeping matplotlib's top."""
    ax.set_ylim(bottom=0, top=max(ax.get_ylim()[1], 1e-9))


def legend(ax: Any, **kwargs: Any) -> Any:
    """The axes' legend with readable labels (``end_to_end`` → "end to end"); ``kwargs`` go to ``ax.legend``."""
    handles, labels = ax.get_legend_handles_labels()
    return ax.legend(handles, [readable(label) for label in labels], **kwargs)


def log2_panels(fig: Any, panels: Sequence[tuple[Any, str]], xlabel: str, title: str) -> Any:
    """Style each (axes, y label) panel: a plain log₂ x axis at the measured values, y from 0, grid, readable
    legend; title the figure; the figure."""
    for ax, label in panels:
        values = [x for line in ax.get_lines() for x in line.get_xdata()]
        plain_log2_axis(ax, values, xlabel)
        ax.set_ylabel(label)
        zero_based(ax)
        ax.grid(alpha=0.3)
        legend(ax)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_log2_panels(fig: Any, panels: Sequence[tuple[Any, str]], xlabel: str, title: str, path: Path) -> Path:
    """``log2_panels``, then write the PNG."""
    return write_figure(log2_panels(fig, panels, xlabel, title), path)
