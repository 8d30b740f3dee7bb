"""``make gpu-proof`` / ``python -m benchmarks.gpu_proof``: everything a lent GPU machine can prove, in one call.

Made for the GPU test machine (../shared/docs/GPU.md: an H100/H200, torch with CUDA, cuda-bindings, no TensorRT,
onnxruntime-gpu only as the four carried parts that ``benchmarks/gpu_ort_check.sh`` unpacks) and its few
device-minutes. In one run, under 5 minutes:

(a) every ``gpu``-marked test (``pytest -m gpu``; the marker asks ``runtime.cuda.device_count()``);
(b) for each model folder under ``--models`` (its FP32 ONNX file): ONNX Runtime's CUDA path three ways — plain ``run``,
    IOBinding, IOBinding + CUDA graphs — each checked against the CPU execution provider in FP32 (max |Δ|
    of the logits, top-1 agreement) on real samples (the calibration set beside the model, else noise);
(c) at batch 1 and 64: the per-stage table (``benchmarks.stages``: preprocess, H2D, run, D2H, …, each with its
    spread, and the trtexec-equivalent compute-only figure) for each way, and PyTorch eager / CUDA-graph
    baselines of the same models (random init: latency only);
(d) one JSON and one Markdown report with the card, driver, CUDA and library versions.

``--dry-run`` is the CPU half, run by ``make test`` (tests/benchmarks/test_gpu_proof.py) so it cannot rot: the
same code on the CPU execution provider (the IOBinding path included; CUDA graphs and the GPU tests reported as
skipped with the reason), short timings, the same report. Exit 0 when every check that ran passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.stages import equivalent_of, markdown_table, measure_stages, stage_table_of
from benchmarks.stages import to_dict as stage_dict
from benchmarks.timing import environment
from formats.artifacts import Artifacts, Precision
from formats.cli import EXIT_CHECK_FAILED, EXIT_OK, command_parser, error_boundary
from formats.writer import Kind, add_force_argument, set_force, write_artifact
from runtime.providers import CudaOptions

BATCHES = (1, 64)
TOP1_AGREEMENT = 0.99  # FP32 on the CUDA EP runs TF32 by default: logits move by ~1e-2, top-1 must not
MAX_ABS_DIFF = 0.05
WAYS = {  # name → CudaOptions of that way through ONNX Runtime
    "run": CudaOptions(io_binding=False),
    "io_binding": CudaOptions(io_binding=True),
    "cuda_graph": CudaOptions(io_binding=True, cuda_graph=True, graph_batches=BATCHES),
}


def card() -> dict:
    """The GPU, driver and CUDA versions (cuda-python), or why there is none."""
    from runtime import cuda

    try:
        if not cuda.device_count():
            return {"gpu": None, "why": "no CUDA GPU visible"}
        info = cuda.device_info(0)
    except Exception as exc:  # no cuda-python, a driver mismatch: the report says so
        return {"gpu": None, "why": f"{type(exc).__name__}: {exc}"}
    return {
        "gpu": info["name"],
        "compute_capability": info["compute_capability"],
        "memory_gib": round(info["total_bytes"] / 2**30, 1),
        "driver_cuda": cuda.version_text(info["driver"]),
        "cuda_python_runtime": cuda.version_text(info["runtime"]),
    }


def gpu_tests(dry_run: bool, timeout_s: int) -> dict:
    """(a): ``pytest -m gpu`` in a subprocess; its summary line and exit status."""
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider", "tests"]
    if dry_run:
        return {"skipped": "dry run (CPU half): the gpu tests need the GPU", "command": " ".join(command[1:])}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"passed": False, "summary": f"timed out after {timeout_s} s", "command": " ".join(command[1:])}
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return {
        "passed": done.returncode == 0,
        "returncode": done.returncode,
        "summary": lines[-1] if lines else done.stderr.strip()[-300:],
        "tail": lines[-30:],
    }


def _agreement(got: np.ndarray, want: np.ndarray) -> dict:
    top1 = float(np.mean(got.argmax(axis=1) == want.argmax(axis=1)))
    diff = float(np.max(np.abs(got.astype(np.float64) - want)))
    return {"max_abs_diff": diff, "top1_agreement": top1, "passed": top1 >= TOP1_AGREEMENT and diff <= MAX_ABS_DIFF}


def model_proof(onnx_path: Path, provider: str, duration_s: float) -> dict:
    """(b) and (c) for one model: each way's agreement with the CPU in FP32 and its stage table per batch."""
    from benchmarks.latency import encoded_samples
    from benchmarks.ortgpu import sample_batch
    from runtime.model import Classifier

    encoded = encoded_samples(onnx_path)
    x = {b: sample_batch(onnx_path, b) for b in BATCHES}
    with Classifier.from_path(onnx_path, providers="cpu") as reference:
        want = {b: reference.run(x[b]).astype(np.float64) for b in BATCHES}
    row: dict = {"model": onnx_path.name, "provider": provider, "ways": {}}
    for way, options in WAYS.items():
        if options.cuda_graph and provider == "cpu":
            row["ways"][way] = {"skipped": "CUDA graphs need the CUDA execution provider"}
            continue
        entry: dict = {"agreement": {}, "stages": {}}
        try:
            with Classifier.from_path(onnx_path, providers=provider, cuda=options) as clf:
                for b in BATCHES:
                    entry["agreement"][b] = _agreement(clf.run(x[b]), want[b])
                    table, equivalent = measure_stages(clf.backend, clf.spec, encoded, b, duration_s, None, 5)
                    entry["stages"][b] = stage_dict(table, equivalent)
                entry["execution"] = clf.backend.execution() if hasattr(clf.backend, "execution") else {}
        except Exception as exc:  # one way failing is a result, not the end of the proof
            entry["error"] = f"{type(exc).__name__}: {str(exc)[:400]}"
        row["ways"][way] = entry
        print(f"  {onnx_path.name} {way}: " + (entry.get("error") or _line(entry)), flush=True)
    return row


def _line(entry: dict) -> str:
    parts = []
    for b, check in entry["agreement"].items():
        total = entry["stages"][b]["stages"]["total"]["median_ms"]
        parts.append(f"bs{b} |Δ| {check['max_abs_diff']:.1e} top-1 {check['top1_agreement']:.0%} {total:.3f} ms")
    return ", ".join(parts)


def torch_rows(dry_run: bool) -> dict:
    """(c): PyTorch eager and CUDA-graph latency at batch 1 and 64 (``benchmarks.device_check``)."""
    if dry_run:
        return {"skipped": "dry run (CPU half): the PyTorch baselines need CUDA"}
    try:
        import torch
    except ImportError as exc:
        return {"skipped": f"torch not installed ({exc})"}
    if not torch.cuda.is_available():
        return {"skipped": "torch has no CUDA here"}
    from benchmarks.device_check import torch_baselines

    return {"rows": torch_baselines(batches=BATCHES)}


def fp32_models(folder: Path) -> list[Path]:
    """The FP32 ONNX file of each model folder under ``folder`` (named by the artifact vocabulary)."""
    found = [Artifacts(sub, sub.name).onnx(Precision.FP32) for sub in sorted(folder.iterdir()) if sub.is_dir()]
    return [path for path in found if path.is_file()]


def failures(report: dict) -> list[str]:
    bad = []
    tests = report["gpu_tests"]
    if "passed" in tests and not tests["passed"]:
        bad.append(f"gpu tests: {tests['summary']}")
    for row in report["models"]:
        for way, entry in row["ways"].items():
            if "error" in entry:
                bad.append(f"{row['model']} {way}: {entry['error']}")
            for b, check in entry.get("agreement", {}).items():
                if not check["passed"]:
                    bad.append(f"{row['model']} {way} bs{b}: disagrees with CPU FP32 {check}")
    return bad


def markdown(report: dict) -> str:
    c = report["card"]
    lines = [
        f"# GPU proof ({'dry run, CPU half' if report['dry_run'] else 'GPU'}) — {report['date']}",
        "",
        f"card: {c.get('gpu') or c.get('why')}"
        + (
            f", compute capability {c['compute_capability']}, {c['memory_gib']} GiB, driver CUDA "
            f"{c['driver_cuda']}, cuda-python {c['cuda_python_runtime']}"
            if c.get("gpu")
            else ""
        ),
        f"versions: {report['environment'].get('versions', {})}; onnxruntime providers: {report['ort_providers']}",
        f"wall time: {report['seconds']:.0f} s",
        "",
        "## (a) gpu-marked tests",
        str(report["gpu_tests"].get("summary") or report["gpu_tests"].get("skipped")),
        "",
        "## (b) ONNX Runtime ways vs CPU FP32, (c) stage tables",
    ]
    for row in report["models"]:
        lines.append(f"\n### {row['model']} on {row['provider']}")
        for way, entry in row["ways"].items():
            if "skipped" in entry or "error" in entry:
                lines.append(f"- {way}: {entry.get('skipped') or entry.get('error')}")
                continue
            lines.append(f"- {way}: {_line(entry)}")
            for b, data in entry["stages"].items():
                lines += markdown_table(b, stage_table_of(data), equivalent_of(data))
    lines += ["", "## (c) PyTorch baselines"]
    torch_part = report["torch"]
    if "rows" in torch_part:
        lines += ["model | dtype | batch | eager ms | CUDA graph ms", "---|---|---|---|---"]
        lines += [
            f"{r['model']} | {r['dtype']} | {r['batch']} | {r['eager_ms']:.3f} | {r['cuda_graph_ms']:.3f}"
            for r in torch_part["rows"]
        ]
    else:
        lines.append(torch_part.get("skipped", ""))
    lines += ["", "## verdict", *(f"- FAIL {f}" for f in report["failures"])]
    if not report["failures"]:
        lines.append("every check that ran passed")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "gpu-proof",
        __doc__,
        [
            "edge gpu-proof --models .gpu-ort/models --out proof   # on the GPU machine (= make gpu-proof)",
            "edge gpu-proof --dry-run --models artifacts --out proof   # the CPU half, anywhere",
        ],
    )
    add_force_argument(parser)
    parser.add_argument("--models", type=Path, required=True, help="folder of model folders (their FP32 ONNX)")
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_proof.json and gpu_proof.md")
    parser.add_argument("--dry-run", action="store_true", help="the CPU half: CPU provider, no gpu tests, no torch")
    parser.add_argument(
        "--duration-s", type=float, default=None, help="time per stage table (default 0.3 s, 0.02 s with --dry-run)"
    )
    parser.add_argument("--tests-timeout-s", type=int, default=150, help="limit for the gpu tests in seconds")
    return parser


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_force(args.force)
    start = time.perf_counter()
    duration = args.duration_s if args.duration_s is not None else (0.02 if args.dry_run else 0.3)
    from runtime.backends.onnxruntime import available_providers

    providers = list(available_providers())
    provider = "cpu" if args.dry_run or "CUDAExecutionProvider" not in providers else "cuda"
    report: dict = {
        "dry_run": args.dry_run,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "card": card(),
        "environment": environment(),
        "ort_providers": providers,
    }
    print(f"== (a) gpu tests\n{report['card']}", flush=True)
    report["gpu_tests"] = gpu_tests(args.dry_run, args.tests_timeout_s)
    print(report["gpu_tests"].get("summary") or report["gpu_tests"].get("skipped"), flush=True)
    print(f"== (b, c) ONNX Runtime on {provider}", flush=True)
    models = fp32_models(args.models)
    report["models"] = [model_proof(path, provider, duration) for path in models]
    if not args.dry_run and provider == "cpu":
        report["models_note"] = "onnxruntime has no CUDAExecutionProvider: unpack the carried onnxruntime-gpu parts"
    print("== (c) PyTorch baselines", flush=True)
    report["torch"] = torch_rows(args.dry_run)
    report["seconds"] = time.perf_counter() - start
    report["failures"] = failures(report)
    if not args.dry_run and provider == "cpu":
        report["failures"].append(report["models_note"])
    write_artifact(args.out / "gpu_proof.json", json.dumps(report, indent=2, default=str) + "\n", Kind.REPORT)
    write_artifact(args.out / "gpu_proof.md", markdown(report), Kind.TEXT)
    print(f"report: {args.out / 'gpu_proof.json'} and gpu_proof.md; {len(report['failures'])} failure(s)")
    return EXIT_CHECK_FAILED if report["failures"] else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
