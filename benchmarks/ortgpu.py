"""``python -m benchmarks ortgpu --engine model.fp32.onnx``: ONNX Runtime on the GPU, ours against the floor.

Every candidate starts from the same preprocessed host (numpy) batch and ends with host logits, so
the host↔device copies are inside every number. Measured in one run, in interleaved rounds (each
reports the median of its round medians, so a noisy neighbour hurts all alike):

- ``ort-run``: a bare ``session.run`` on the provider (what our runtime did before IOBinding);
- ``runtime``: our backend with its defaults (feed checks included): IOBinding on a GPU provider,
  plain ``run`` on the CPU;
- ``runtime-graph``: the same with ONNX Runtime CUDA graphs (``--cuda-graph``);
- ``ort-graph-floor``: bare ONNX Runtime, IOBinding + CUDA graph, nothing else, copying the input the
  way ONNX Runtime's own CUDA-graph tests do (``update_inplace``, no ``synchronize_inputs``): the floor;
- ``torch-eager-cuda``: PyTorch eager on the GPU from the checkpoint beside the model (torch imported
  lazily, only here), when torch has CUDA.

On the CPU execution provider the graph and torch columns are reported as skipped with the reason.
Each candidate's outputs are also compared with the CPU execution provider's (max |Δ|, top-1
agreement): FP32 on the CUDA EP uses TF32 unless ``--no-tf32``. The issue's targets (bs1 within
1.3× of the floor, ≥ 5× PyTorch eager at bs1, no regression against ``ort-run`` at the largest batch)
are evaluated where their columns were measured. Writes ``<engine>.ortgpu.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.timing import environment, measure, parse_batches
from formats.artifacts import Artifacts
from formats.cli import EXIT_OK, EXIT_USER_ERROR, command_parser, error_boundary
from formats.errors import RuntimeToolkitError
from formats.writer import Kind, add_force_argument, set_force, write_artifact
from runtime.providers import CudaOptions, Provider, parse_providers

_logger = logging.getLogger(__name__)

ORT_RUN, RUNTIME, RUNTIME_GRAPH, FLOOR, TORCH = (
    "ort-run",
    "runtime",
    "runtime-graph",
    "ort-graph-floor",
    "torch-eager-cuda",
)
CANDIDATES = (ORT_RUN, RUNTIME, RUNTIME_GRAPH, FLOOR, TORCH)
FLOOR_RATIO, TORCH_SPEEDUP, NO_REGRESSION = 1.3, 5.0, 1.05


def sample_batch(engine: Path, batch: int) -> np.ndarray:
    """Real samples when the calibration set is beside the model (else seeded noise), preprocessed."""
    import io

    from PIL import Image

    from benchmarks.latency import encoded_samples
    from runtime.preprocess import preprocess
    from runtime.spec import spec_from_sidecar

    spec = spec_from_sidecar(engine)
    if spec is None:
        raise RuntimeToolkitError(f"{engine}: no spec beside it (<model>.json); export with `python -m export`")
    encoded = encoded_samples(engine, count=min(batch, 64))
    ready = np.stack([preprocess(Image.open(io.BytesIO(b)), spec) for b in encoded])
    return np.ascontiguousarray(np.resize(ready, (batch,) + ready.shape[1:]))


def _session(engine: Path, providers: Sequence[Provider], cuda: CudaOptions) -> Any:
    """A bare ``InferenceSession``, made as the runtime makes it (same checks and messages)."""
    from runtime.backends.onnxruntime import SessionFromOnnx

    return SessionFromOnnx(engine, providers=[p.short() for p in providers], cuda=cuda)()


def _floor_fn(ort: Any, session: Any, x: np.ndarray, graph_id: int, device_id: int) -> Callable[[], np.ndarray]:
    """Bare IOBinding + CUDA graph: device OrtValues at fixed addresses, one graph id per batch size."""
    inp, out = session.get_inputs()[0], session.get_outputs()[0]
    x_dev = ort.OrtValue.ortvalue_from_shape_and_type(list(x.shape), x.dtype, "cuda", device_id)
    out_shape = [len(x) if not isinstance(d, int) else d for d in out.shape]
    y_dev = ort.OrtValue.ortvalue_from_shape_and_type(out_shape, np.float32, "cuda", device_id)
    binding = session.io_binding()
    binding.bind_ortvalue_input(inp.name, x_dev)
    binding.bind_ortvalue_output(out.name, y_dev)
    run_options = ort.RunOptions()
    run_options.add_run_config_entry("gpu_graph_id", str(graph_id))

    def run() -> np.ndarray:
        x_dev.update_inplace(x)
        session.run_with_iobinding(binding, run_options)
        return y_dev.numpy()

    return run


def _torch_fn(engine: Path, x: np.ndarray) -> tuple[Callable[[], np.ndarray] | None, str]:
    """PyTorch eager CUDA from ``<model>.pt`` beside the model, or None and why it is skipped."""
    checkpoint = Artifacts.of(engine).checkpoint
    try:
        import torch
    except ImportError:
        return None, "torch is not installed (the device side has no torch)"
    if not torch.cuda.is_available():
        return None, "torch has no CUDA device here"
    if not checkpoint.is_file():
        return None, f"no checkpoint {checkpoint.name} beside the model"
    try:
        from train.checkpoint import load_checkpoint

        model = load_checkpoint(checkpoint).model.eval().cuda()
    except Exception as exc:  # a checkpoint from another torch, a missing training extra: name it, measure the rest
        return None, f"cannot load {checkpoint.name} ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"

    @torch.inference_mode()
    def run() -> np.ndarray:
        return model(torch.from_numpy(x).cuda()).cpu().numpy()

    return run, ""


def candidates(
    engine: Path, x: np.ndarray, providers: Sequence[Provider], tf32: bool | None, state: dict
) -> tuple[dict[str, Callable[[], np.ndarray]], dict[str, str]]:
    """The timed callables for one batch and the reason for every candidate left out."""
    from runtime.providers import onnxruntime_module as _onnxruntime

    ort = _onnxruntime()
    gpu = providers[0].on_gpu
    plain = CudaOptions(tf32=tf32)
    if "ort" not in state:  # sessions and backends made once, shared by every batch size
        from runtime.backends.onnxruntime import OnnxRuntimeBackend

        state["ort"] = _session(engine, providers, plain)
        state[RUNTIME] = OnnxRuntimeBackend(engine, providers=[p.short() for p in providers], cuda=plain).activate()
        if gpu:
            state[RUNTIME_GRAPH] = OnnxRuntimeBackend(
                engine, providers=[p.short() for p in providers], cuda=CudaOptions(cuda_graph=True, tf32=tf32)
            ).activate()
            state["floor"] = _session(engine, providers, CudaOptions(cuda_graph=True, tf32=tf32))
        state["graph_ids"] = {}
    session, name = state["ort"], state["ort"].get_inputs()[0].name
    fns: dict[str, Callable[[], np.ndarray]] = {ORT_RUN: lambda: session.run(None, {name: x})[0]}
    runtime = state[RUNTIME]
    in_name, out_name = runtime.inputs[0].name, runtime.outputs[0].name
    fns[RUNTIME] = lambda: runtime.infer({in_name: x})[out_name]
    skipped: dict[str, str] = {}
    if gpu:
        graph = state[RUNTIME_GRAPH]
        fns[RUNTIME_GRAPH] = lambda: graph.infer({in_name: x})[out_name]
        graph_id = state["graph_ids"].setdefault(len(x), len(state["graph_ids"]) + 1)
        fns[FLOOR] = _floor_fn(ort, state["floor"], x, graph_id, providers[0].device_id or 0)
    else:
        why = f"CUDA graphs need the CUDA execution provider; this run uses {providers[0].name}"
        skipped.update({RUNTIME_GRAPH: why, FLOOR: why})
    if not gpu:
        skipped[TORCH] = f"PyTorch eager CUDA is the GPU baseline; this run uses {providers[0].name}"
    elif len(x) != 1:
        skipped[TORCH] = "measured at batch 1 only (the issue's target)"
    else:
        torch_fn, why = _torch_fn(engine, x)
        if torch_fn is not None:
            fns[TORCH] = torch_fn
        else:
            skipped[TORCH] = why
    return fns, skipped


def parity(fns: dict[str, Callable[[], np.ndarray]], reference: np.ndarray) -> dict[str, dict]:
    """Each candidate's output against the CPU execution provider's on the same batch."""
    out = {}
    for name, fn in fns.items():
        got = np.asarray(fn(), dtype=np.float32).reshape(reference.shape)
        out[name] = {
            "max_abs_diff": float(np.abs(got - reference).max()),
            "top1_agreement": float((got.argmax(1) == reference.argmax(1)).mean()),
        }
    return out


def targets(rows: dict[int, dict[str, float]]) -> list[dict]:
    """The issue's three targets, each with its ratio, or the reason it could not be evaluated."""
    found = []
    one = rows.get(1, {})
    if RUNTIME_GRAPH in one and FLOOR in one:
        ratio = one[RUNTIME_GRAPH] / one[FLOOR]
        found.append(
            {
                "target": f"bs1 runtime-graph within {FLOOR_RATIO}x of the floor",
                "ratio": ratio,
                "met": ratio <= FLOOR_RATIO,
            }
        )
    if TORCH in one and RUNTIME_GRAPH in one:
        ratio = one[TORCH] / one[RUNTIME_GRAPH]
        found.append(
            {
                "target": f"bs1 runtime-graph >= {TORCH_SPEEDUP}x faster than PyTorch eager CUDA",
                "ratio": ratio,
                "met": ratio >= TORCH_SPEEDUP,
            }
        )
    if rows:
        largest = max(rows)
        here = rows[largest]
        best = min(here[k] for k in (RUNTIME, RUNTIME_GRAPH) if k in here)
        ratio = best / here[ORT_RUN]
        found.append(
            {
                "target": f"bs{largest} our best runtime mode no slower than ort-run (x{NO_REGRESSION})",
                "ratio": ratio,
                "met": ratio <= NO_REGRESSION,
            }
        )
    return found


def run_benchmark(
    engine: Path,
    batches: Sequence[int],
    providers: Sequence[Provider],
    tf32: bool | None,
    duration_s: float,
    warmup_s: float,
    rounds: int,
    log: Callable[[str], None] = _logger.info,
) -> dict:
    cpu = _session(engine, [Provider("CPUExecutionProvider")], CudaOptions())
    state: dict = {}
    rows: dict[int, dict[str, float]] = {}
    report_rows = []
    for batch in batches:
        x = sample_batch(engine, batch)
        fns, skipped = candidates(engine, x, providers, tf32, state)
        reference = cpu.run(None, {cpu.get_inputs()[0].name: x})[0]
        agreement = parity(fns, reference)  # also the first (warm-up / capture) calls
        medians: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(rounds):
            for name, fn in fns.items():
                medians[name].append(measure(name, fn, batch, warmup_s, duration_s, 5).median_ms)
        rows[batch] = {k: statistics.median(v) for k, v in medians.items()}
        log(
            f"  batch {batch}: "
            + ", ".join(f"{k} {v:.3f} ms" for k, v in rows[batch].items())
            + "".join(f"; {k} skipped" for k in skipped)
        )
        report_rows.append(
            {
                "batch": batch,
                "median_ms": rows[batch],
                "rounds_ms": medians,
                "parity_vs_cpu": agreement,
                "skipped": skipped,
            }
        )
    execution = {k: state[k].execution() for k in (RUNTIME, RUNTIME_GRAPH) if k in state}
    for key in (RUNTIME, RUNTIME_GRAPH):
        if key in state:
            state[key].deactivate()
    return {
        "engine": str(engine),
        "providers": [p.short() for p in providers],
        "tf32_requested": tf32,
        "execution": execution,
        "environment": environment(),
        "settings": {"duration_s": duration_s, "warmup_s": warmup_s, "rounds": rounds},
        "results": report_rows,
        "targets": targets(rows),
    }


def markdown(report: dict) -> str:
    lines = [
        f"`{Path(report['engine']).name}` on {', '.join(report['providers'])}: median ms, host arrays in "
        "and out | " + " | ".join(CANDIDATES),
        "|".join(["---"] * (len(CANDIDATES) + 1)),
    ]
    for row in report["results"]:
        cells = [f"{row['median_ms'][k]:.3f}" if k in row["median_ms"] else "skipped" for k in CANDIDATES]
        lines.append(f"batch {row['batch']} | " + " | ".join(cells))
    lines.append("")
    for row in report["results"]:
        for name, why in row["skipped"].items():
            lines.append(f"- batch {row['batch']} {name} skipped: {why}")
        worst = max(row["parity_vs_cpu"].items(), key=lambda kv: kv[1]["max_abs_diff"])
        lines.append(
            f"- batch {row['batch']} parity vs CPU: worst max |Δ| {worst[1]['max_abs_diff']:.2e} "
            f"({worst[0]}), top-1 agreement min "
            f"{min(v['top1_agreement'] for v in row['parity_vs_cpu'].values()):.0%}"
        )
    tf32 = {k: v.get("tf32") for k, v in report["execution"].items()}
    lines.append(f"- execution: {json.dumps(report['execution'])} (tf32 as ONNX Runtime resolved it: {tf32})")
    for t in report["targets"]:
        lines.append(f"- target {t['target']}: ratio {t['ratio']:.2f} → {'met' if t['met'] else 'NOT met'}")
    return "\n".join(lines) + "\n"


EXAMPLES = ("edge bench ortgpu --engine asl_cnn.fp32.onnx --batch 1,64   # run vs IOBinding vs CUDA graph (GPU)",)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", type=Path, required=True, help="ONNX model file (spec JSON beside it)")
    p.add_argument("--batch", default="1,64", help="comma-separated batch sizes (default 1,64)")
    p.add_argument(
        "--providers", default=None, help="cuda, cuda:N or cpu (default: cuda when this onnxruntime has it, else cpu)"
    )
    p.add_argument(
        "--tf32",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the CUDA EP's use_tf32 for every ONNX Runtime session (default: ONNX Runtime's, on)",
    )
    p.add_argument("--duration-s", type=float, default=1.0, help="timed seconds per candidate and round (default 1)")
    p.add_argument("--warmup-ms", type=float, default=200.0, help="untimed warm-up per measurement (default 200)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--out", type=Path, default=None, help="report folder (default: beside the engine)")
    p.add_argument("--json", action="store_true", help="print the JSON report")
    add_force_argument(p)


def run(args: argparse.Namespace) -> int:
    set_force(args.force)
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    try:
        batches = sorted(set(parse_batches(args.batch)))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        spec = args.providers
        if spec is None:
            from runtime.backends.onnxruntime import available_providers

            spec = "cuda" if "CUDAExecutionProvider" in available_providers() else "cpu"
        providers = parse_providers(spec)
        log(f"{args.engine.name}: providers {', '.join(p.short() for p in providers)}")
        report = run_benchmark(
            args.engine, batches, providers, args.tf32, args.duration_s, args.warmup_ms / 1000, max(1, args.rounds), log
        )
    except RuntimeToolkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    stem = (args.out or args.engine.parent) / f"{args.engine.name}.ortgpu"
    write_artifact(Path(f"{stem}.json"), json.dumps(report, indent=2) + "\n", Kind.REPORT)
    write_artifact(Path(f"{stem}.md"), markdown(report), Kind.TEXT)
    print(json.dumps(report, indent=2) if args.json else markdown(report) + f"written: {stem}.{{json,md}}")
    return EXIT_OK


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    parser = command_parser("bench ortgpu", __doc__, EXAMPLES)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
