"""The look the benchmark figures share: panels over a log₂ axis (batch size, clients), saved atomically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from formats.writer import write_figure


def save_log2_panels(fig, panels: Sequence[tuple[object, str]], xlabel: str, title: str, path: Path) -> Path:
    """Style each (axes, y label) panel with a log₂ x axis, grid and legend; title the figure; write the PNG."""
    for ax, label in panels:
        ax.set_xscale("log", base=2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return write_figure(fig, path)
