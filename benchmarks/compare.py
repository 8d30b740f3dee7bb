"""Backends and precisions side by side, in one run, on the same inputs.

``python -m benchmarks compare --model asl_cnn [--artifacts DIR] [--batch 1,64] [--duration-s 1]``

PyTorch eager FP32 (the checkpoint) against our runtime with ONNX Runtime on every precision file
found (fp32, fp16, int8, int8.ort), and TensorRT plans beside them where this machine can run them
(else each is named with the reason it was not measured). Each timed call starts from decoded uint8 images and ends with
class probabilities (preprocessing included on both sides). The candidates are measured in
interleaved rounds and each reports the median of its round medians, so a noisy neighbour hurts
all of them alike. Ratios are against PyTorch eager and against ONNX Runtime FP32 at the same
batch. Accuracy comes from the accuracy gate's report (``<model>.gate.json``) when present.
Writes ``<model>.compare.json``, ``.md`` and an accuracy-vs-latency ``.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from benchmarks.timing import environment, measure, parse_batches
from runtime.artifacts import ONNX_PRECISIONS, TENSORRT_PRECISIONS, Artifacts
from runtime.cli import EXIT_OK, EXIT_USER_ERROR, describe, error_boundary
from runtime.errors import RuntimeToolkitError
from runtime.model import Classifier
from runtime.postprocess import to_probabilities
from runtime.preprocess import normalize
from runtime.spec import ModelSpec
from runtime.writer import Kind, add_force_argument, set_force, write_artifact, write_figure

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

    @property
    def throughput(self) -> float:
        return 1000.0 * self.batch / self.median_ms


def _torch_fn(checkpoint: Path, spec: ModelSpec, batch: np.ndarray) -> Callable[[], object]:
    import torch

    from train.checkpoint import load_checkpoint

    model = load_checkpoint(checkpoint).model.eval()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    @torch.inference_mode()
    def run():
        return torch.softmax(model(torch.from_numpy(normalize(batch, spec))), dim=1).numpy()

    return run


def _runtime_fn(classifier: Classifier, batch: np.ndarray) -> Callable[[], object]:
    spec = classifier.spec
    return lambda: to_probabilities(classifier.run(normalize(batch, spec)), spec)


def gate_accuracy(artifacts: Path, model: str) -> dict[str, float]:
    path = Artifacts(artifacts, model).gate_json
    if not path.is_file():
        return {}
    rows = json.loads(path.read_text())["rows"]
    out = {f"ort-{r['precision']}": r["accuracy"] for r in rows}
    if rows:
        out[TORCH] = rows[0]["reference_accuracy"]
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
    spec = ModelSpec.load(names.spec)
    files = {f"ort-{p}": names.onnx(p) for p in PRECISIONS}
    files = {k: v for k, v in files.items() if v.is_file()}
    if not files:
        raise FileNotFoundError(f"{artifacts}: no {model}.<precision>.onnx files; export and calibrate first")
    accuracy = gate_accuracy(artifacts, model)
    classifiers = {k: Classifier.from_path(v).__enter__() for k, v in files.items()}
    for precision in TENSORRT_PRECISIONS:  # TensorRT plans, where this machine can run them
        plan = names.plan(precision)
        if plan.is_file():
            try:
                classifiers[f"trt-{precision}"] = Classifier.from_path(plan).__enter__()
            except RuntimeToolkitError as exc:
                log(f"  {plan.name}: not measured ({exc})")
    rows: list[Row] = []
    try:
        for batch_size in batches:
            batch = np.resize(images, (batch_size,) + images.shape[1:])  # repeat real samples up to the batch
            fns = {k: _runtime_fn(c, batch) for k, c in classifiers.items()}
            if with_torch and names.checkpoint.is_file():
                fns = {TORCH: _torch_fn(names.checkpoint, spec, batch), **fns}
            medians: dict[str, list[float]] = {k: [] for k in fns}
            for _ in range(rounds):
                for name, fn in fns.items():
                    medians[name].append(
                        measure(name, fn, batch_size, warmup_s=0.2, duration_s=duration_s, min_iterations=5).median_ms
                    )
            here = {
                k: Row(k, batch_size, statistics.median(v), v, accuracy=accuracy.get(k)) for k, v in medians.items()
            }
            if "ort-fp32" in classifiers:
                bare, call = paired_overhead(classifiers["ort-fp32"], batch, duration_s * rounds)
                here[BARE], here[CALL] = Row(BARE, batch_size, bare, [bare]), Row(CALL, batch_size, call, [call])
            for row in here.values():
                if TORCH in here:
                    row.vs_torch = here[TORCH].median_ms / row.median_ms
                if "ort-fp32" in here:
                    row.vs_ort_fp32 = here["ort-fp32"].median_ms / row.median_ms
            rows.extend(here.values())
            log(f"  {model} batch {batch_size}: " + ", ".join(f"{k} {r.median_ms:.3f} ms" for k, r in here.items()))
    finally:
        for c in classifiers.values():
            c.__exit__(None, None, None)
    return rows


def paired_overhead(classifier: Classifier, batch: np.ndarray, seconds: float) -> tuple[float, float]:
    """Median ms of ONNX Runtime's bare ``session.run`` and of our backend call on the same ready batch,
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
    return 1000.0 * statistics.median(times[bare]), 1000.0 * statistics.median(times[call])


def overhead(rows: Sequence[Row], batch: int = 1) -> float | None:
    """Our backend call's time over ONNX Runtime's bare ``session.run`` minus one, at ``batch``."""
    here = {r.candidate: r for r in rows if r.batch == batch}
    if BARE in here and CALL in here:
        return here[CALL].median_ms / here[BARE].median_ms - 1.0
    return None


def markdown(model: str, rows: Sequence[Row]) -> str:
    lines = [
        f"| {model} | batch | median ms | images/s | × PyTorch eager | × ORT FP32 | accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        acc = f"{r.accuracy:.4f}" if r.accuracy is not None else ""
        lines.append(
            f"| {r.candidate} | {r.batch} | {r.median_ms:.3f} | {r.throughput:.0f} | {r.vs_torch:.2f} "
            f"| {r.vs_ort_fp32:.2f} | {acc} |"
        )
    extra = overhead(rows)
    if extra is not None:
        lines.append(f"\nruntime overhead over the bare ONNX Runtime call at batch 1: {extra:+.1%}")
    return "\n".join(lines) + "\n"


def plot(path: Path, model: str, rows: Sequence[Row]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401  (used through matplotlib.ticker below)

    batches = sorted({r.batch for r in rows})
    fig, axes = plt.subplots(1, len(batches), figsize=(5.5 * len(batches), 4.2), squeeze=False)
    for ax, batch in zip(axes[0], batches):
        for r in (r for r in rows if r.batch == batch and r.accuracy is not None):
            ax.scatter(r.median_ms, 100 * r.accuracy, s=40)
            ax.annotate(
                r.candidate, (r.median_ms, 100 * r.accuracy), fontsize=8, xytext=(4, 4), textcoords="offset points"
            )
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # crowded minor labels on short ranges
        ax.set_xlabel(f"median latency, batch {batch} (ms, log)")
        ax.set_ylabel("held-out accuracy (%)")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{model}: accuracy vs latency (end to end from decoded images)")
    fig.tight_layout()
    return write_figure(fig, path)


def write_reports(model: str, artifacts: Path, rows: Sequence[Row]) -> dict[str, str]:
    report = {
        "model": model,
        "environment": environment(),
        "overhead_bs1": overhead(rows),
        "rows": [{**asdict(r), "throughput": r.throughput} for r in rows],
    }
    files = {
        "json": write_artifact(
            Artifacts(artifacts, model).compare_json, json.dumps(report, indent=2) + "\n", Kind.REPORT
        ),
        "markdown": write_artifact(Artifacts(artifacts, model).compare_md, markdown(model, rows), Kind.TEXT),
    }
    if any(r.accuracy is not None for r in rows):
        files["png"] = plot(Artifacts(artifacts, model).compare_png, model, rows)
    return {k: str(v) for k, v in files.items()}


def sample_images(model: str, artifacts: Path, count: int = 64) -> np.ndarray:
    """Real samples to time with: the calibration set's images (training split), else zeros."""
    from calibration.dataset import CalibrationSetError, load_calibration_set

    try:
        return load_calibration_set(artifacts, model).images[:count]
    except CalibrationSetError:
        spec = ModelSpec.load(Artifacts(artifacts, model).spec)
        shape = (count, spec.height, spec.width) + ((spec.channels,) if spec.channels > 1 else ())
        return np.zeros(shape, np.uint8)


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
            not args.no_torch,
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
    parser = argparse.ArgumentParser(prog="python -m benchmarks compare", description=describe(__doc__))
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
