"""``python -m benchmarks latency --engine FILE``: trtexec-grade statistics, plus what trtexec hides.

For each batch size: min, mean, median, p90, p95, p99, max, std, coefficient of variation (a
warning above 2.5 %) and throughput, for two measurements taken in the same run:

- ``compute``: the bare backend call on a ready, preprocessed batch (what trtexec reports as GPU
  compute on a GPU; ONNX Runtime's ``run`` on the CPU);
- ``end_to_end``: decode the encoded images (PNG bytes in memory) → preprocess → the backend call
  (its host↔device copies included) → softmax, with the median share of each stage;
- the stage table (``benchmarks.stages``): each stage's median and spread, the backend's call split as
  trtexec splits it (H2D, GPU compute by CUDA events, D2H, enqueue, synchronize for TensorRT; host-timed
  H2D / run / D2H for ONNX Runtime with IOBinding) and the trtexec-equivalent compute-only figure.

A batch sweep recommends an optimization profile: the knee is the smallest batch after which
doubling adds less than 10 % throughput. Writes JSON, CSV, Markdown and PNG plots (latency and
throughput vs batch); ``--baseline old.json`` flags median regressions beyond ``--threshold`` and
exits 1. The environment goes with every result.
"""
# Over 400 lines: one benchmark (sweep, stage split, knee, regression check, report writers) whose parts share
# one report dataclass; the figure already lives in benchmarks/plots.py. Split it when another report is added.

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.noise import COV_WARNING
from benchmarks.plots import log2_panels
from benchmarks.stages import equivalent_of, markdown_table, measure_stages, stage_table_of
from benchmarks.stages import to_dict as stage_dict
from benchmarks.timing import LatencyStats, environment, measure, parse_batches, stats_from_samples
from formats.artifacts import Artifacts
from formats.cli import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_USER_ERROR,
    command_parser,
    error_boundary,
    non_negative_float,
    positive_float,
    positive_int,
    thread_count,
)
from formats.errors import RuntimeToolkitError
from formats.files import read_bounded
from formats.writer import Kind, add_force_argument, set_force, write_artifact, write_figure
from runtime.backends.table import BackendOptions, add_backend_arguments, options_from_args
from runtime.model import Classifier
from runtime.postprocess import to_probabilities
from runtime.preprocess import preprocess

_logger = logging.getLogger(__name__)

KNEE_GAIN = 0.10
STAGES = ("decode", "preprocess", "backend", "postprocess")


@dataclass
class BatchResult:
    batch: int
    compute: LatencyStats
    end_to_end: LatencyStats
    stage_share: dict[str, float]  # median share of end-to-end time per stage
    stages: dict | None = None  # benchmarks.stages: the per-stage table with spread, and the trtexec figure

    def warnings(self) -> list[str]:
        return [
            f"batch {self.batch} {s.name}: coefficient of variation {s.cov:.1%} > {COV_WARNING:.1%}"
            for s in (self.compute, self.end_to_end)
            if s.cov > COV_WARNING
        ]

    def to_dict(self) -> dict:
        return {
            "batch": self.batch,
            "compute": self.compute.to_dict(),
            "end_to_end": self.end_to_end.to_dict(),
            "stage_share": self.stage_share,
            **(self.stages or {}),
        }


def encoded_samples(engine: Path, count: int = 64) -> list[bytes]:
    """PNG bytes of real samples: the calibration set beside the model when there is one, else noise."""
    from runtime.spec import spec_from_sidecar

    images = None
    calib = Artifacts.of(engine).calibration_set
    if calib.is_file():
        with np.load(calib, allow_pickle=False) as data:
            images = data["images"][:count]
    if images is None:
        spec = spec_from_sidecar(engine)
        size = (spec.height, spec.width) if spec else (224, 224)
        images = np.random.default_rng(0).integers(0, 256, (count, *size, 3), dtype=np.uint8)
    out = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def run_batch(
    classifier: Classifier, encoded: list[bytes], batch: int, warmup_s: float, duration_s: float, iterations: int | None
) -> BatchResult:
    spec = classifier.spec
    files = [encoded[i % len(encoded)] for i in range(batch)]
    ready = np.stack([preprocess(Image.open(io.BytesIO(b)), spec) for b in files])
    compute = measure("compute", lambda: classifier.run(ready), batch, warmup_s, duration_s, 10, iterations)
    samples, stages = [], {s: [] for s in STAGES}
    end = time.perf_counter() + max(duration_s, 0.05)
    while (time.perf_counter() < end or len(samples) < 10) and (iterations is None or len(samples) < iterations):
        t0 = time.perf_counter()
        decoded = [Image.open(io.BytesIO(b)) for b in files]
        for image in decoded:
            image.load()
        t1 = time.perf_counter()
        batch_array = np.stack([preprocess(image, spec) for image in decoded])
        t2 = time.perf_counter()
        outputs = classifier.run(batch_array)
        t3 = time.perf_counter()
        to_probabilities(outputs, spec)
        t4 = time.perf_counter()
        samples.append((t4 - t0) * 1e3)
        for name, (a, b) in zip(STAGES, ((t0, t1), (t1, t2), (t2, t3), (t3, t4))):
            stages[name].append((b - a) / (t4 - t0))
    share = {name: float(np.median(values)) for name, values in stages.items()}
    table, equivalent = measure_stages(classifier.backend, spec, encoded, batch, duration_s, iterations)
    return BatchResult(
        batch, compute, stats_from_samples("end_to_end", samples, batch), share, stage_dict(table, equivalent)
    )


def recommend_profile(results: Sequence[BatchResult]) -> dict:
    """min 1, opt at the knee (doubling the batch adds < KNEE_GAIN throughput), max the largest tested."""
    ordered = sorted(results, key=lambda r: r.batch)
    knee = ordered[-1].batch
    for here, nxt in zip(ordered, ordered[1:]):
        gain = nxt.compute.throughput / here.compute.throughput - 1.0
        if gain < KNEE_GAIN:
            knee = here.batch
            break
    return {
        "min": 1,
        "opt": knee,
        "max": ordered[-1].batch,
        "rule": f"opt = smallest batch after which the next size adds < {KNEE_GAIN:.0%} throughput",
    }


def sweep(
    engine: Path,
    batches: Sequence[int],
    warmup_s: float = 0.2,
    duration_s: float = 1.0,
    iterations: int | None = None,
    log: Callable[[str], None] = _logger.info,
    options: BackendOptions | None = None,
    execution: dict | None = None,
) -> list[BatchResult]:
    """One result per batch size, with the backend's stage split where it has one (a plan's H2D / compute / D2H);
    ``execution`` (when given) receives how the backend ran (providers, TF32…)."""
    encoded = encoded_samples(engine)
    results = []
    options = options or BackendOptions()
    with Classifier.from_path(engine, options) as classifier:
        fixed = classifier.static_batch
        if fixed is not None and set(batches) != {fixed}:
            raise RuntimeToolkitError(
                f"{engine}: the model has a static batch of {fixed} (input {classifier.spec.input_name!r}); "
                f"--batch {','.join(map(str, batches))} cannot be measured; use --batch {fixed} or export it "
                "with a dynamic batch axis"
            )
        for batch in batches:
            result = run_batch(classifier, encoded, batch, warmup_s, duration_s, iterations)
            results.append(result)
            log(
                f"  batch {batch}: compute median {result.compute.median_ms:.3f} ms, end to end "
                f"{result.end_to_end.median_ms:.3f} ms ({result.end_to_end.throughput:.0f} img/s)"
                + (" [unstable]" if result.warnings() else "")
            )
        if execution is not None:
            execution.update(classifier.backend.execution() or {})
    unstable = [w for r in results for w in r.warnings()]
    if unstable:
        log(
            f"WARNING: {len(unstable)} of {2 * len(results)} measurements have a coefficient of variation above "
            f"{COV_WARNING:.1%} (e.g. {unstable[0]}); the machine is noisy (other load, frequency scaling): "
            "lock clocks, stop other work or run longer (--duration-s)"
        )
    return results


def markdown(engine: Path, results: Sequence[BatchResult], profile: dict) -> str:
    lines = [
        f"`{engine.name}` | compute median / p99 ms | CoV | end-to-end median / p99 ms | CoV | img/s | "
        "decode | preprocess | backend | postprocess",
        "|".join(["---"] * 11),
    ]
    for r in results:
        c, e, s = r.compute, r.end_to_end, r.stage_share
        lines.append(
            f"batch {r.batch} | {c.median_ms:.3f} / {c.p99_ms:.3f} | {c.cov:.1%} | {e.median_ms:.3f} / "
            f"{e.p99_ms:.3f} | {e.cov:.1%} | {e.throughput:.0f} | {s['decode']:.0%} | {s['preprocess']:.0%} "
            f"| {s['backend']:.0%} | {s['postprocess']:.0%}"
        )
    for r in results:  # where each batch's milliseconds go (benchmarks.stages)
        if r.stages:
            lines += markdown_table(r.batch, stage_table_of(r.stages), equivalent_of(r.stages))
    lines.append(
        f"\nrecommended optimization profile: min {profile['min']}, opt {profile['opt']}, max {profile['max']} "
        f"({profile['rule']})"
    )
    return "\n".join(lines) + "\n"


def write_csv(path: Path, results: Sequence[BatchResult]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    fields = ("median_ms", "mean_ms", "min_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "std_ms")
    writer.writerow(["batch", "measure", *fields, "cov", "throughput", *[f"share_{s}" for s in STAGES]])
    for r in results:
        for stats in (r.compute, r.end_to_end):
            shares = [r.stage_share[s] for s in STAGES] if stats is r.end_to_end else [""] * len(STAGES)
            writer.writerow(
                [
                    r.batch,
                    stats.name,
                    *[f"{getattr(stats, f):.4f}" for f in fields],
                    f"{stats.cov:.4f}",
                    f"{stats.throughput:.1f}",
                    *shares,
                ]
            )
    return write_artifact(path, buffer.getvalue(), Kind.TEXT)


def figure(engine: Path, results: Sequence[BatchResult]) -> Any:
    """Latency (median, band min–p99) and throughput against batch size, compute-only and end to end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = [r.batch for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("compute", "end_to_end"):
        left.plot(batches, [getattr(r, key).median_ms for r in results], marker="o", label=f"{key} median")
        left.fill_between(
            batches, [getattr(r, key).min_ms for r in results], [getattr(r, key).p99_ms for r in results], alpha=0.15
        )
        right.plot(batches, [getattr(r, key).throughput for r in results], marker="o", label=key)
    return log2_panels(
        fig,
        ((left, "latency (ms), band min–p99"), (right, "throughput (images/s)")),
        "batch size",
        f"{engine.name}: latency and throughput vs batch",
    )


def plot(path: Path, engine: Path, results: Sequence[BatchResult]) -> Path | None:
    """The latency/throughput PNG; None where matplotlib is not installed (a Jetson's device install)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    return write_figure(figure(engine, results), path)


def regressions(report: dict, baseline: dict, threshold: float) -> list[str]:
    old = {r["batch"]: r for r in baseline.get("results", [])}
    found = []
    for r in report["results"]:
        before = old.get(r["batch"])
        if before is None:
            continue
        for key in ("compute", "end_to_end"):
            a, b = before[key]["median_ms"], r[key]["median_ms"]
            if b > a * (1.0 + threshold):
                found.append(
                    f"batch {r['batch']} {key}: median {a:.3f} → {b:.3f} ms (+{b / a - 1:.1%}, threshold "
                    f"{threshold:.0%})"
                )
    return found


EXAMPLES = (
    "edge bench latency --engine artifacts/asl_cnn/asl_cnn.int8.ort.onnx --batch 1,8,64",
    "edge bench latency --engine asl_cnn.fp32.onnx --baseline old.json --threshold 0.1   # exit 1 on a regression",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", type=Path, required=True, help="model file (.onnx or .plan)")
    p.add_argument("--batch", default="1,8,64", help="comma-separated batch sizes (default 1,8,64)")
    p.add_argument("--warmup-ms", type=float, default=200.0, help="untimed warm-up per batch size (default 200)")
    p.add_argument("--duration-s", type=float, default=1.0, help="timed seconds per measurement (default 1)")
    p.add_argument("--iterations", type=int, default=None, help="cap on timed iterations per measurement")
    p.add_argument(
        "--threads", type=thread_count(), default=None, help="ONNX Runtime intra-op threads (default: its choice)"
    )
    add_backend_arguments(p)
    p.add_argument("--out", type=Path, default=None, help="report folder (default: beside the engine)")
    p.add_argument("--baseline", type=Path, default=None, help="an earlier JSON report: exit 1 on regressions")
    p.add_argument("--threshold", type=float, default=0.10, help="regression threshold (default 0.10 = 10 %%)")
    p.add_argument("--json", action="store_true", help="print the JSON report")
    add_force_argument(p)


# Checked in run(), not as argparse types: `python -m benchmarks latency` parses in benchmarks/__main__, whose
# usage errors would bypass this command's error boundary (and its JSON document).
_BOUNDS = {
    "warmup_ms": non_negative_float(600_000),
    "duration_s": positive_float(3600),
    "iterations": positive_int(10_000_000),
    "threads": positive_int(1024),
    "threshold": non_negative_float(100),
}


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse a zero/negative/NaN count or duration with one line naming the option (``--iterations 0`` used to
    end in a StatisticsError, a negative threshold flagged every run)."""
    for name, parse in _BOUNDS.items():
        value = getattr(args, name, None)
        if value is not None:
            try:
                parse(str(value))
            except argparse.ArgumentTypeError as exc:
                raise RuntimeToolkitError(f"--{name.replace('_', '-')}: {exc}") from None


@error_boundary
def run(args: argparse.Namespace) -> int:
    set_force(args.force)
    check_arguments(args)
    try:
        batches = parse_batches(args.batch)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    baseline = None
    if args.baseline is not None:
        try:
            baseline = json.loads(read_bounded(args.baseline, "a JSON latency report", RuntimeToolkitError, 64 << 20))
        except RuntimeToolkitError as exc:  # a FIFO, a device (/dev/zero read until OOM), a folder, too large
            print(f"error: --baseline {exc}", file=sys.stderr)
            return EXIT_USER_ERROR
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            print(f"error: --baseline {args.baseline}: cannot read it as a JSON report ({exc})", file=sys.stderr)
            return EXIT_USER_ERROR
        if not isinstance(baseline, dict) or not isinstance(baseline.get("results"), list) or not baseline["results"]:
            print(
                f'error: --baseline {args.baseline}: not a latency report (no "results" list); give a JSON '
                "file written by `python -m benchmarks latency`",
                file=sys.stderr,
            )
            return EXIT_USER_ERROR
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    execution: dict = {}
    try:
        options = options_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    results = sweep(
        args.engine,
        sorted(set(batches)),
        args.warmup_ms / 1000,
        args.duration_s,
        args.iterations,
        log,
        options,
        execution,
    )
    profile = recommend_profile(results)
    report = {
        "engine": str(args.engine),
        "environment": environment(),
        "threads": args.threads,
        "execution": execution,
        "settings": {"warmup_ms": args.warmup_ms, "duration_s": args.duration_s, "iterations": args.iterations},
        "results": [r.to_dict() for r in results],
        "recommended_profile": profile,
        "warnings": [w for r in results for w in r.warnings()],
    }
    out = args.out or args.engine.parent
    stem = args.engine.name + ".latency"
    report["regressions"] = regressions(report, baseline, args.threshold) if baseline else []
    write_artifact(out / f"{stem}.json", json.dumps(report, indent=2) + "\n", Kind.REPORT)
    write_csv(out / f"{stem}.csv", results)
    write_artifact(out / f"{stem}.md", markdown(args.engine, results, profile), Kind.TEXT)
    png = plot(out / f"{stem}.png", args.engine, results)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(markdown(args.engine, results, profile), end="")
        print(
            f"written: {out / stem}.{{json,csv,md{',png' if png else ''}}}"
            + ("" if png else " (no PNG: matplotlib is not installed, `pip install matplotlib` for the plot)")
        )
    for line in report["regressions"]:
        print(f"REGRESSION {line}", file=sys.stderr)
    return EXIT_CHECK_FAILED if report["regressions"] else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = command_parser("bench latency", __doc__, EXAMPLES)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
