"""Backends and precisions side by side, in one run, on the same inputs.

``python -m benchmarks compare --model asl_cnn [--artifacts DIR] [--batch 1,64] [--duration-s 1]``

PyTorch eager FP32 (the checkpoint) against our runtime with ONNX Runtime on every precision file
found (fp32, fp16, int8, int8.ort), and TensorRT plans beside them where this machine can run them
(else each is named with the reason it was not measured), all through the comparison harness
(``harness.compare``): each model file opened as ``runtime.infer`` opens it. Each timed call starts from decoded
uint8 images and ends with class probabilities (preprocessing included on both sides). The candidates are measured in
interleaved rounds and each reports the median of its round medians, so a noisy neighbour hurts
all of them alike. Ratios are against PyTorch eager and against ONNX Runtime FP32 at the same
batch. Accuracy comes from the accuracy gate's report (``<model>.gate.json``) when present.
Writes ``<model>.compare.json``, ``.md`` and an accuracy-vs-latency ``.png``.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.noise import COV_WARNING, Spread, containment_error, unstable
from benchmarks.plots import accuracy_axis, style
from benchmarks.timing import environment, parse_batches
from formats.artifacts import ONNX_PRECISIONS, TENSORRT_PRECISIONS, Artifacts
from formats.cli import EXIT_OK, EXIT_USER_ERROR, command_parser, error_boundary
from formats.errors import RuntimeToolkitError
from formats.writer import Kind, add_force_argument, set_force, write_artifact, write_figure
from harness.compare import Batch, Runner, Timing, file_runner, run_backends, torch_runner
from runtime.model import Classifier
from runtime.preprocess import normalize
from runtime.spec import ModelSpec

_logger = logging.getLogger(__name__)

PRECISIONS = ONNX_PRECISIONS
TORCH = "pytorch-eager-fp32"
# The runtime's own overhead: our backend call vs ONNX Runtime's bare session.run, same ready input.
BARE, CALL = "bare-session-run-fp32", "runtime-backend-call-fp32"


@dataclass
class Row:
    candidate: str
    batch: int
    median_ms: float
    rounds: list[float]
    vs_torch: float = 0.0  # speedup over PyTorch eager at this batch
    vs_ort_fp32: float = 0.0  # speedup over ONNX Runtime FP32 at this batch
    accuracy: float | None = None
    cov: float = 0.0  # over every timed call of every round (std / mean)
    p10_ms: float = 0.0
    p90_ms: float = 0.0

    @classmethod
    def of(cls, candidate: str, batch: int, spread: Spread, accuracy: float | None = None) -> Row:
        return cls(
            candidate, batch, spread.median_ms, list(spread.round_medians), accuracy=accuracy, cov=spread.cov,
            p10_ms=spread.p10_ms, p90_ms=spread.stats.p90_ms,
        )  # fmt: skip

    @property
    def unstable(self) -> bool:
        return unstable(self.cov)

    @property
    def throughput(self) -> float:
        return 1000.0 * self.batch / self.median_ms


def _torch_runner(checkpoint: Path) -> Runner:
    from train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    return torch_runner(ckpt.model, ckpt.spec, TORCH, probabilities=True, batch_size=None)


def gate_accuracy(artifacts: Path, model: str) -> dict[str, float]:
    return {k: v[0] for k, v in gate_intervals(artifacts, model).items()}


def gate_intervals(artifacts: Path, model: str) -> dict[str, tuple[float, float, float]]:
    """Each candidate's held-out accuracy and its 95 % interval (accuracy, low, high) from the gate's report."""
    path = Artifacts(artifacts, model).gate_json
    if not path.is_file():
        return {}
    rows = json.loads(path.read_text())["rows"]

    def triple(accuracy: float, interval: Sequence[float] | None) -> tuple[float, float, float]:
        low, high = interval if interval else (accuracy, accuracy)
        return accuracy, low, high

    out = {f"ort-{r['precision']}": triple(r["accuracy"], r.get("accuracy_ci")) for r in rows}
    if rows:
        out[TORCH] = triple(rows[0]["reference_accuracy"], rows[0].get("reference_accuracy_ci"))
    return out


def compare(
    model: str,
    artifacts: Path,
    images: np.ndarray,
    batches: Sequence[int] = (1, 64),
    duration_s: float = 1.0,
    rounds: int = 3,
    with_torch: bool = True,
    log: Callable[[str], None] = _logger.info,
) -> list[Row]:
    artifacts = Path(artifacts)
    names = Artifacts(artifacts, model)  # refuses a path-like model name
    ModelSpec.load(names.spec)  # a missing spec fails before anything runs
    files = {f"ort-{p}": names.onnx(p) for p in PRECISIONS}
    files = {k: v for k, v in files.items() if v.is_file()}
    if not files:
        raise FileNotFoundError(f"{artifacts}: no {model}.<precision>.onnx files; export and calibrate first")
    accuracy = gate_accuracy(artifacts, model)
    # Every candidate is opened once, as runtime.infer opens it, and timed from uint8 images to probabilities.
    runners = {k: file_runner(v, k, probabilities=True, batch_size=None) for k, v in files.items()}
    if with_torch and names.checkpoint.is_file():
        runners = {TORCH: _torch_runner(names.checkpoint), **runners}
    timing = Timing(warmup_s=0.2, seconds=duration_s, calls=5)
    rows: list[Row] = []
    with ExitStack() as stack:  # open for all rounds (run_backends leaves an active classifier as it is)
        for runner in runners.values():
            stack.enter_context(runner.classifier)
        for precision in TENSORRT_PRECISIONS:  # TensorRT plans, where this machine can run them
            plan = names.plan(precision)
            if plan.is_file():
                runner = file_runner(plan, f"trt-{precision}", probabilities=True, batch_size=None)
                try:
                    stack.enter_context(runner.classifier)
                except RuntimeToolkitError as exc:
                    log(f"  {plan.name}: not measured ({exc})")
                    continue
                runners[runner.name] = runner
        for batch_size in batches:
            batch = Batch(np.resize(images, (batch_size,) + images.shape[1:]))  # repeat real samples up to the batch
            samples: dict[str, list[list[float]]] = {k: [] for k in runners}
            for _ in range(rounds):  # interleaved rounds: a noisy neighbour hurts every candidate alike
                for name, result in run_backends(list(runners.values()), [batch], timing).items():
                    samples[name].append(result.latencies_ms[0])
            here = {k: Row.of(k, batch_size, Spread.of(k, v, batch_size), accuracy.get(k)) for k, v in samples.items()}
            if "ort-fp32" in runners:
                bare, call = paired_overhead(runners["ort-fp32"].classifier, batch.images, duration_s * rounds)
                here[BARE], here[CALL] = (
                    Row.of(n, batch_size, Spread.of(n, [t], batch_size)) for n, t in ((BARE, bare), (CALL, call))
                )
            for row in here.values():
                if TORCH in here:
                    row.vs_torch = here[TORCH].median_ms / row.median_ms
                if "ort-fp32" in here:
                    row.vs_ort_fp32 = here["ort-fp32"].median_ms / row.median_ms
            rows.extend(here.values())
            log(f"  {model} batch {batch_size}: " + ", ".join(f"{k} {r.median_ms:.3f} ms" for k, r in here.items()))
    return rows


def paired_overhead(classifier: Classifier, batch: np.ndarray, seconds: float) -> tuple[list[float], list[float]]:
    """Every ms of ONNX Runtime's bare ``session.run`` and of our backend call on the same ready batch,
    timed in alternating pairs (order flipped every pair) so machine drift hits both alike."""
    import time

    ready = normalize(batch, classifier.spec)
    session, feed = classifier.backend.session, {classifier.spec.input_name: ready}

    def bare():
        return session.run(None, feed)

    def call():
        return classifier.run(ready)

    for _ in range(20):
        bare(), call()
    times: dict = {bare: [], call: []}
    end = time.perf_counter() + seconds
    flip = False
    while time.perf_counter() < end or len(times[bare]) < 20:
        for fn in (call, bare) if flip else (bare, call):
            start = time.perf_counter()
            fn()
            times[fn].append(time.perf_counter() - start)
        flip = not flip
    return [1000.0 * t for t in times[bare]], [1000.0 * t for t in times[call]]


def overhead(rows: Sequence[Row], batch: int = 1) -> float | None:
    """Our backend call's time over ONNX Runtime's bare ``session.run`` minus one, at ``batch``; None when not
    measured or when the bare call (which our call contains) timed slower: that is noise, not an overhead."""
    here = {r.candidate: r for r in rows if r.batch == batch}
    if BARE in here and CALL in here and overhead_error(rows, batch) is None:
        return here[CALL].median_ms / here[BARE].median_ms - 1.0
    return None


def overhead_error(rows: Sequence[Row], batch: int = 1) -> str | None:
    here = {r.candidate: r for r in rows if r.batch == batch}
    if BARE not in here or CALL not in here:
        return None
    return containment_error(BARE, here[BARE].median_ms, CALL, here[CALL].median_ms)


def warnings(rows: Sequence[Row]) -> list[str]:
    """Every timing past bench latency's instability rule, and every bare call slower than the call containing it."""
    out = [
        f"unstable: {r.candidate} batch {r.batch}: coefficient of variation {r.cov:.1%} > {COV_WARNING:.1%}"
        for r in rows
        if r.unstable
    ]
    for batch in sorted({r.batch for r in rows}):
        error = overhead_error(rows, batch)
        if error:
            out.append(f"batch {batch}: {error}")
    return out


def markdown(model: str, rows: Sequence[Row]) -> str:
    lines = [
        f"| {model} | batch | median ms (p10–p90) | CoV | images/s | × PyTorch eager | × ORT FP32 | accuracy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        acc = f"{r.accuracy:.4f}" if r.accuracy is not None else ""
        flag = " ⚠ unstable" if r.unstable else ""
        lines.append(
            f"| {r.candidate} | {r.batch} | {r.median_ms:.3f} ({r.p10_ms:.3f}–{r.p90_ms:.3f}) | {r.cov:.1%}{flag} "
            f"| {r.throughput:.0f} | {f'{r.vs_torch:.2f}' if r.vs_torch else '—'} | {r.vs_ort_fp32:.2f} | {acc} |"
        )
    extra = overhead(rows)
    if extra is not None:
        lines.append(f"\nruntime overhead over the bare ONNX Runtime call at batch 1: {extra:+.1%}")
    found = warnings(rows)
    if found:
        lines.append(
            f"\nWARNING: {len(found)} timings are noisy or inconsistent (other load, frequency scaling); the ratios "
            "above are not results until a quiet rerun agrees:"
        )
        lines += [f"- {w}" for w in found]
    return "\n".join(lines) + "\n"


def figure(model: str, rows: Sequence[Row], intervals: dict[str, tuple[float, float, float]] | None = None) -> Any:
    """Accuracy (95 % interval as error bars, axis from a round floor) against latency, one panel per batch,
    candidates told apart by colour and marker in one legend beside the panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401  (used through matplotlib.ticker below)

    intervals = intervals or {}
    shown = [r for r in rows if r.accuracy is not None]
    batches = sorted({r.batch for r in shown})
    names = list(dict.fromkeys(r.candidate for r in shown))
    fig, axes = plt.subplots(
        1, len(batches), figsize=(4.6 * len(batches) + 2.6, 4.2), squeeze=False, sharey=True, layout="constrained"
    )
    lows, highs = [], []
    for ax, batch in zip(axes[0], batches):
        for r in (r for r in shown if r.batch == batch):
            acc = 100 * r.accuracy
            _, low, high = intervals.get(r.candidate, (r.accuracy, r.accuracy, r.accuracy))
            lows.append(100 * low)
            highs.append(100 * high)
            ax.errorbar(
                r.median_ms,
                acc,
                yerr=[[max(0.0, acc - 100 * low)], [max(0.0, 100 * high - acc)]],
                capsize=4,
                linestyle="none",
                markersize=7,
                label=r.candidate,
                **style(names.index(r.candidate)),
            )
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # crowded minor labels on short ranges
        ax.set_xlabel(f"median latency, batch {batch} (ms, log)")
        ax.grid(alpha=0.3)
    accuracy_axis(axes[0][0], lows, highs, "held-out accuracy (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", title="bars: 95 % interval")
    fig.suptitle(f"{model}: accuracy vs latency (end to end from decoded images)")
    return fig


def plot(
    path: Path, model: str, rows: Sequence[Row], intervals: dict[str, tuple[float, float, float]] | None = None
) -> Path | None:
    """The figure as PNG; None without matplotlib (a device install: the tables are written, the figure is not)."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        return None
    return write_figure(figure(model, rows, intervals), path)


def write_reports(model: str, artifacts: Path, rows: Sequence[Row]) -> dict[str, str]:
    report = {
        "model": model,
        "environment": environment(),
        "overhead_bs1": overhead(rows),
        "warnings": warnings(rows),
        "unstable": any(r.unstable for r in rows),
        "rows": [{**asdict(r), "throughput": r.throughput, "unstable": r.unstable} for r in rows],
    }
    files = {
        "json": write_artifact(
            Artifacts(artifacts, model).compare_json, json.dumps(report, indent=2) + "\n", Kind.REPORT
        ),
        "markdown": write_artifact(Artifacts(artifacts, model).compare_md, markdown(model, rows), Kind.TEXT),
    }
    if any(r.accuracy is not None for r in rows):
        png = plot(Artifacts(artifacts, model).compare_png, model, rows, gate_intervals(artifacts, model))
        if png is not None:
            files["png"] = png
    return {k: str(v) for k, v in files.items()}


def sample_images(model: str, artifacts: Path, count: int = 64) -> np.ndarray:
    """Real samples to time with: the calibration set's images (training split), else zeros."""
    from calibration.calibration_set import CalibrationSetError, load_calibration_set

    try:
        return load_calibration_set(Artifacts(artifacts, model)).images[:count]
    except CalibrationSetError:
        spec = ModelSpec.load(Artifacts(artifacts, model).spec)
        shape = (count, spec.height, spec.width) + ((spec.channels,) if spec.channels > 1 else ())
        return np.zeros(shape, np.uint8)


def _torch_or_note() -> bool:
    """Whether PyTorch is here; without it (a device venv) eager is left out with a note, as ``--no-torch``."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        print("note: torch is not installed here: PyTorch eager is left out (as --no-torch)", file=sys.stderr)
        return False
    return True


EXAMPLES = ("edge bench compare --model asl_cnn --batch 1,64    # PyTorch eager vs fp32/fp16/int8/int8.ort",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model name, e.g. asl_cnn")
    parser.add_argument("--artifacts", type=Path, default=None, help="the model's folder (default artifacts/<model>)")
    parser.add_argument("--batch", default="1,64", help="comma-separated batch sizes (default 1,64)")
    parser.add_argument("--duration-s", type=float, default=1.0, help="timed seconds per candidate per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch eager out")
    parser.add_argument("--json", action="store_true", help="print the JSON report")
    add_force_argument(parser)


@error_boundary
def run(args: argparse.Namespace) -> int:
    set_force(args.force)
    artifacts = args.artifacts or Path("artifacts") / args.model
    try:
        batches = parse_batches(args.batch)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        rows = compare(
            args.model,
            artifacts,
            sample_images(args.model, artifacts),
            batches,
            args.duration_s,
            args.rounds,
            not args.no_torch and _torch_or_note(),
            log=functools.partial(print, file=sys.stderr) if args.json else print,  # --json: stdout is the document
        )
        files = write_reports(args.model, artifacts, rows)
    except (FileNotFoundError, ValueError, RuntimeToolkitError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(Path(files["json"]).read_text() if args.json else markdown(args.model, rows), end="")
    if not args.json:
        print(f"written: {', '.join(files.values())}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = command_parser("bench compare", __doc__, EXAMPLES)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
