"""Every benchmark figure kind rendered from a fixture and held to the readability rules of ``benchmarks.plots``,
read back from the figure objects: accuracy with error bars on a round floor, plain batch-size ticks, integer
stream ticks, zero-based rates, readable legends, and no text drawn on other text or off the figure."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from benchmarks import compare, latency, serving, stream  # noqa: E402
from benchmarks.compare import Row  # noqa: E402
from benchmarks.latency import BatchResult  # noqa: E402
from benchmarks.plots import accuracy_limits, readable  # noqa: E402
from benchmarks.serving import LoadResult  # noqa: E402
from benchmarks.timing import LatencyStats  # noqa: E402
from calibration.statistics import wilson_interval  # noqa: E402

ENGINE = Path("mnist_cnn.fp32.onnx")


def _unshown_tick_labels(fig) -> set[int]:
    """Tick labels matplotlib keeps for ticks outside the view: never drawn, so never overlapping anything."""
    hidden = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            slack = (high - low) * 1e-6
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not low - slack <= tick.get_loc() <= high + slack:
                    hidden |= {id(tick.label1), id(tick.label2)}
    return hidden


def visible_texts(fig) -> list[Text]:
    hidden = _unshown_tick_labels(fig)
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip() and id(t) not in hidden]


def assert_readable_text(fig) -> None:
    """No two texts overlap (shrunk by a pixel: touching is fine) and none leaves the figure."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer).expanded(1.0, 1.0).padded(-1)) for t in visible_texts(fig)]
    page = fig.bbox
    for text, box in boxes:
        assert box.x0 >= page.x0 - 1 and box.x1 <= page.x1 + 1 and box.y0 >= page.y0 - 1 and box.y1 <= page.y1 + 1, (
            f"{text!r} is cut off at the figure's edge"
        )
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        assert not box_a.overlaps(box_b), f"{a!r} is drawn over {b!r}"


def tick_labels(axis) -> list[str]:
    """The tick labels shown (the figure drawn once before: ``assert_readable_text`` draws it)."""
    return [t.get_text() for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]


# ---- compare: accuracy vs latency ----------------------------------------------------------------------------------


def compare_rows() -> tuple[list[Row], dict]:
    """The issue's case: five candidates within 0.08 pp of each other (10,000 test images), two nearly on top."""
    accuracy = {"pytorch-eager-fp32": 0.9296, "ort-fp32": 0.9296, "ort-fp16": 0.9297, "ort-int8": 0.9289}
    ms = {1: (2.9, 0.61, 0.62, 0.71), 64: (20.0, 9.1, 9.2, 12.0)}
    rows = [Row(k, b, m, [m], accuracy=accuracy[k]) for b, t in ms.items() for k, m in zip(accuracy, t, strict=True)]
    rows += [Row("bare-session-run-fp32", b, 0.5, [0.5]) for b in ms]  # no accuracy: not drawn
    intervals = {}
    for name, acc in accuracy.items():
        ci = wilson_interval(round(acc * 10_000), 10_000)
        intervals[name] = (acc, ci.low, ci.high)
    return rows, intervals


def test_accuracy_axis_starts_on_a_round_floor_at_least_five_points_wide():
    assert accuracy_limits([92.89], [92.97]) == (90.0, 95.0)
    assert accuracy_limits([99.1], [99.9]) == (95.0, 100.0)
    assert accuracy_limits([61.0], [93.0]) == (60.0, 95.0)
    assert accuracy_limits([0.5], [3.0]) == (0.0, 5.0)


def test_compare_draws_intervals_on_a_sensible_axis_with_a_legend():
    rows, intervals = compare_rows()
    fig = compare.figure("mnist_cnn", rows, intervals)
    try:
        assert_readable_text(fig)
        panels = [ax for ax in fig.axes if ax.get_xlabel()]
        assert len(panels) == 2
        low, high = panels[0].get_ylim()
        assert high - low >= 5.0 and low % 5 == 0 and low <= 92.0 <= 93.5 <= high  # not 92.89–92.97
        for ax in panels:
            bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
            assert len(bars) == 4 and all(c.has_yerr for c in bars)
            assert not ax.texts  # no labels beside points: they landed on each other
        legend = fig.legends[0]
        assert [t.get_text() for t in legend.get_texts()] == list(intervals)
        assert all(t.replace(".", "").isdigit() for t in tick_labels(panels[0].yaxis))  # 90, 91 …: no offset
    finally:
        plt.close(fig)


def test_compare_reads_the_gates_intervals_and_writes_the_png(tmp_path):
    rows, intervals = compare_rows()
    gate_rows = [
        {"precision": "fp32", "accuracy": 0.9296, "accuracy_ci": list(intervals["ort-fp32"][1:])}
        | {"reference_accuracy": 0.9296, "reference_accuracy_ci": list(intervals["pytorch-eager-fp32"][1:])},
        {"precision": "int8", "accuracy": 0.9289, "accuracy_ci": list(intervals["ort-int8"][1:])}
        | {"reference_accuracy": 0.9296, "reference_accuracy_ci": list(intervals["pytorch-eager-fp32"][1:])},
    ]
    (tmp_path / "mnist_cnn.gate.json").write_text(json.dumps({"rows": gate_rows}))
    read = compare.gate_intervals(tmp_path, "mnist_cnn")
    assert read["ort-int8"] == pytest.approx(intervals["ort-int8"]) and set(read) == {
        "ort-fp32",
        "ort-int8",
        "pytorch-eager-fp32",
    }
    files = compare.write_reports("mnist_cnn", tmp_path, rows)
    assert Path(files["png"]).read_bytes()[:4] == b"\x89PNG"


# ---- latency and serving: log₂ axes ----------------------------------------------------------------------------------


def _stats(name: str, batch: int, median: float) -> LatencyStats:
    return LatencyStats(name, batch, 100, median, median, median * 1.2, median * 0.9, median * 2, 0.0, median * 1.6)


def test_latency_has_plain_batch_ticks_readable_legend_and_zero_based_axes():
    results = [
        BatchResult(b, _stats("compute", b, 0.3 + 0.05 * b), _stats("end_to_end", b, 0.8 + 0.1 * b), {})
        for b in (1, 2, 4, 8, 16, 32, 64)
    ]
    fig = latency.figure(ENGINE, results)
    try:
        assert_readable_text(fig)
        for ax in fig.axes:
            assert tick_labels(ax.xaxis) == ["1", "2", "4", "8", "16", "32", "64"]
            assert ax.get_ylim()[0] == 0
            legend = [t.get_text() for t in ax.get_legend().get_texts()]
            assert all("_" not in t for t in legend) and any(t.startswith("end to end") for t in legend)
    finally:
        plt.close(fig)


def test_serving_has_plain_client_ticks_and_readable_legend():
    results = [
        LoadResult(mode, c, 100 * c * (2 if mode == "triton" else 1), 1.0, 1 + c, 1.5 + c, 2 + c, 1 + c, 1.0)
        for mode in serving.MODES
        for c in (1, 2, 4, 8, 16)
    ]
    fig = serving.figure(ENGINE, results)
    try:
        assert_readable_text(fig)
        for ax in fig.axes:
            assert tick_labels(ax.xaxis) == ["1", "2", "4", "8", "16"]
            assert ax.get_ylim()[0] == 0
            assert all("_" not in t.get_text() for t in ax.get_legend().get_texts())
    finally:
        plt.close(fig)


# ---- stream: integer stream ticks ------------------------------------------------------------------------------------


def test_stream_has_whole_stream_ticks_zero_based_rate_and_legend_off_the_bars():
    shares = {"decode": 0.3, "preprocess": 0.2, "inference": 0.4, "sink": 0.1}
    report = {
        "results": [{"streams": s, "frames_per_s": f, "stage_share": shares} for s, f in ((1, 212), (2, 230), (3, 236))]
    }
    fig = stream.figure(ENGINE, report)
    try:
        assert_readable_text(fig)
        rate, shares_ax = fig.axes[:2]
        for ax in (rate, shares_ax):
            assert tick_labels(ax.xaxis) == ["1", "2", "3"]  # never 1.5 streams
        assert rate.get_ylim()[0] == 0
        renderer = fig.canvas.get_renderer()
        legend_box = shares_ax.get_legend().get_window_extent(renderer)
        assert not any(legend_box.overlaps(bar.get_window_extent(renderer)) for bar in shares_ax.patches)
    finally:
        plt.close(fig)


def test_readable_labels():
    assert readable("end_to_end median") == "end to end median" and readable("in_process p99") == "in process p99"


@pytest.mark.parametrize("batches", [[1], [1, 64]])
def test_one_or_two_batches_still_get_plain_ticks(batches):
    results = [BatchResult(b, _stats("compute", b, 1.0), _stats("end_to_end", b, 2.0), {}) for b in batches]
    fig = latency.figure(ENGINE, results)
    try:
        fig.canvas.draw()
        assert tick_labels(fig.axes[0].xaxis) == [str(b) for b in batches]
    finally:
        plt.close(fig)


def test_the_text_check_sees_labels_on_each_other_and_off_the_figure():
    """The check above can fail: the old compare plot's labels beside two close points, and a clipped label."""
    fig, ax = plt.subplots(figsize=(4, 3))
    try:
        ax.scatter([0.61, 0.62], [92.96, 92.97])
        ax.set_xlim(0.5, 0.9)  # room on the right: the labels fit the figure, only each other is in the way
        ax.set_ylim(90, 95)  # 0.01 pp apart on a sensible axis: the two labels land on each other
        for x, y, name in ((0.61, 92.96, "ort-fp32"), (0.62, 92.965, "ort-fp16")):
            ax.annotate(name, (x, y), xytext=(4, 4), textcoords="offset points")
        fig.tight_layout()
        with pytest.raises(AssertionError, match="drawn over"):
            assert_readable_text(fig)
        ax.texts[1].remove()
        fig.text(0.98, 0.5, "a long label off the right edge")
        with pytest.raises(AssertionError, match="cut off"):
            assert_readable_text(fig)
    finally:
        plt.close(fig)
