"""Confusion matrices people can read (``calibration.figures``): the gate's per-precision mistake panels and
``edge evaluate``'s real-photo matrix, rendered from fixtures and checked from the figure objects: a colour bar,
a log colour scale (one mistake gets a colour, not white), and a count in every non-empty cell."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from calibration import gate, real_photos  # noqa: E402
from tests.benchmarks.test_plots import assert_readable_text  # noqa: E402


def _mnist_like() -> dict[str, np.ndarray]:
    fp32 = np.diag(np.arange(980, 1080, 10))
    fp32[3, 5], fp32[4, 9], fp32[7, 2] = 12, 7, 1  # one single mistake beside a dozen
    int8 = fp32.copy()
    int8[3, 5] += 2
    int8[1, 7] = 1
    return {"fp32": fp32, "int8": int8}


def _images(fig):
    return [ax.images[0] for ax in fig.axes if ax.images]


def test_gate_panels_have_counts_a_log_scale_and_a_colour_bar():
    matrices = _mnist_like()
    fig = gate.confusion_figure("mnist_cnn", matrices, [str(i) for i in range(10)])
    try:
        panels = [ax for ax in fig.axes if ax.get_xlabel() == "predicted"]
        assert len(panels) == 2
        bars = [ax for ax in fig.axes if "log scale" in ax.get_ylabel()]
        assert len(bars) == 1  # one colour bar for the shared scale
        for ax, (name, matrix) in zip(panels, matrices.items(), strict=True):
            mistakes = matrix - np.diag(np.diag(matrix))
            assert sorted(t.get_text() for t in ax.texts) == sorted(str(v) for v in mistakes[mistakes > 0])
            image = ax.images[0]
            assert isinstance(image.norm, LogNorm) and image.norm.vmin == 1
            single = image.cmap(image.norm(1))
            assert single[:3] != (1.0, 1.0, 1.0) and single[3] == 1.0  # a single mistake is coloured, not blank
            assert ax.get_title().startswith(f"{name}: {int(mistakes.sum())} mistakes")
        assert_readable_text(fig)
    finally:
        plt.close(fig)


def test_gate_with_four_precisions_wraps_into_rows_and_hides_no_panel():
    matrices = {p: _mnist_like()["fp32"] for p in ("fp32", "fp16", "int8", "int8.ort")}
    fig = gate.confusion_figure("mnist_cnn", matrices, [str(i) for i in range(10)])
    try:
        panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_xlabel() == "predicted"]
        assert len(panels) == 4
        assert len({round(ax.get_position().y0, 2) for ax in panels}) == 2  # two rows of two, not 4 in a strip
    finally:
        plt.close(fig)


def test_real_photo_confusion_counts_every_cell_with_a_colour_bar():
    labels = tuple("ABCDEFGHIKLMNOPQRSTUVWXY")  # the 24 static ASL letters
    rng = np.random.default_rng(0)
    truth = rng.integers(0, len(labels), 240)
    predicted = np.where(rng.random(240) < 0.85, truth, rng.integers(0, len(labels), 240))
    photos = [real_photos.Photo(Path(f"{i}.jpg"), int(t), "-", ".") for i, t in enumerate(truth)]
    report = real_photos.RealPhotoReport(
        "asl_cnn", "asl_cnn.fp32.onnx", "asl_real/test", labels, photos, predicted, np.full(240, 0.9)
    )
    fig = real_photos.confusion_figure(report)
    try:
        ax = next(ax for ax in fig.axes if ax.get_xlabel() == "predicted")
        matrix = report.confusion()
        assert len(ax.texts) == int(np.count_nonzero(matrix))
        assert isinstance(ax.images[0].norm, LogNorm)
        assert any("log scale" in a.get_ylabel() for a in fig.axes)
        assert_readable_text(fig)
    finally:
        plt.close(fig)
