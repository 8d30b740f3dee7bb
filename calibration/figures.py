"""Confusion matrices people can read: counts in the cells, a log colour scale (one mistake shows beside a
diagonal of a thousand) and a colour bar saying so. Shared by the accuracy gate's per-precision panels
(``calibration.gate``) and ``edge evaluate``'s real-photo report (``calibration.real_photos``).

matplotlib is imported lazily, by the caller's figure (a device profile has none). The benchmark figures' rules
(accuracy axes with intervals, batch-size ticks) are in ``benchmarks.plots``, above this package.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

MAX_LABELLED_CELLS = 30  # past 30 classes the counts would not fit their cells: the colour bar alone reads them


def log_norm(peak: int) -> Any:
    """A log colour scale from 1 to ``peak`` (at least 2, so a matrix of ones still has a range)."""
    from matplotlib.colors import LogNorm

    return LogNorm(vmin=1, vmax=max(2, int(peak)))


def draw_confusion(
    ax: Any,
    matrix: np.ndarray,
    labels: Sequence[str],
    norm: Any,
    fontsize: float = 7,
    columns: Sequence[str] | None = None,
) -> Any:
    """Draw ``matrix`` (true × predicted counts) on ``ax``: empty cells white, each count written in its cell
    (up to ``MAX_LABELLED_CELLS`` classes), the image returned for a colour bar. ``columns`` names the predicted
    axis where it differs from the true one (the hand stage's extra "no hand" column)."""
    shown = np.ma.masked_equal(matrix, 0)  # log(0) has no colour: an empty cell stays white
    image = ax.imshow(shown, cmap="viridis", norm=norm)
    if len(labels) <= MAX_LABELLED_CELLS:
        for t, p in zip(*np.nonzero(matrix), strict=True):
            dark = norm(matrix[t, p]) < 0.6  # viridis is dark at its low end: white text there
            ax.text(
                p, t, str(matrix[t, p]), ha="center", va="center", fontsize=fontsize, color="white" if dark else "k"
            )
    extra = columns is not None and list(columns) != list(labels)  # "no hand" is too wide for a letter's cell
    columns = labels if columns is None else columns
    ax.set_xticks(range(len(columns)), columns, fontsize=fontsize, rotation=90 if extra else 0)
    ax.set_yticks(range(len(labels)), labels, fontsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return image


def colour_bar(fig: Any, image: Any, axes: Any, label: str) -> Any:
    """A colour bar for ``image`` beside ``axes`` with plain tick labels (1, 10, 100; not 10⁰, 10¹)."""
    from matplotlib.ticker import FuncFormatter

    bar = fig.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label=label)
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    return bar


def cell_size(labels: int) -> float:
    """Inches per panel side so the counts fit their cells (about 0.32 in a class, at least 4.5)."""
    return max(4.5, 0.32 * labels + 2.5)
