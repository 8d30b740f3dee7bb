"""``make device-check`` / ``python -m benchmarks.device_check``: everything that needs a GPU, in one report.

1. The install doctor (``runtime.doctor``).
2. The cuda-python layer: pinned ↔ device round trips (checked byte for byte) with their bandwidth,
   a CUDA graph captured and replayed.
3. With standard TensorRT: for each model folder under ``--artifacts``, build (or reuse) the fp32 /
   fp16 / int8 engines, run the self-test against the golden I/O, and a latency sweep over batch sizes.
4. With PyTorch on CUDA: eager vs CUDA-graph baselines at batch 1 for the course models (the
   reference TensorRT users compare with).

What cannot run on this machine is reported as skipped with the reason. Writes a JSON report.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.timing import parse_batches
from formats.artifacts import TENSORRT_PRECISIONS, Artifacts
from formats.cli import EXIT_CHECK_FAILED, EXIT_OK, command_parser, error_boundary
from formats.writer import Kind, add_force_argument, set_force, write_artifact
from runtime import doctor


def _time(fn, repeats: int = 50) -> float:
    for _ in range(5):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(samples)


def cuda_layer() -> dict:
    from runtime import cuda

    out: dict = {"device": cuda.device_info(0), "copies": []}
    stream = cuda.Stream()
    try:
        for mib in (1, 64):
            count = mib * (1 << 20) // 4
            src, dst = cuda.PinnedBuffer((count,), np.float32), cuda.PinnedBuffer((count,), np.float32)
            dev = cuda.DeviceBuffer(src.nbytes)
            src.array[...] = np.random.default_rng(mib).random(count, np.float32)

            def h2d():
                cuda.copy_htod_async(dev, src, src.nbytes, stream)
                stream.synchronize()

            def d2h():
                cuda.copy_dtoh_async(dst, dev, dst.nbytes, stream)
                stream.synchronize()

            h2d_ms, d2h_ms = _time(h2d, 20), _time(d2h, 20)
            out["copies"].append(
                {
                    "mib": mib,
                    "exact": bool(np.array_equal(src.array, dst.array)),
                    "h2d_gb_s": src.nbytes / h2d_ms / 1e6,
                    "d2h_gb_s": dst.nbytes / d2h_ms / 1e6,
                }
            )
            for b in (src, dst, dev):
                b.close()
        src, dst = cuda.PinnedBuffer((4096,), np.float32), cuda.PinnedBuffer((4096,), np.float32)
        dev = cuda.DeviceBuffer(src.nbytes)

        def work():
            cuda.copy_htod_async(dev, src, src.nbytes, stream)
            cuda.copy_dtoh_async(dst, dev, dst.nbytes, stream)

        graph = cuda.CudaGraph(stream, work)
        src.array[...] = 7.0
        graph.launch()
        stream.synchronize()
        direct = _time(lambda: (work(), stream.synchronize()))
        replay = _time(lambda: (graph.launch(), stream.synchronize()))
        out["cuda_graph"] = {"replay_correct": bool(np.all(dst.array == 7.0)), "direct_ms": direct, "graph_ms": replay}
        graph.close()
        for b in (src, dst, dev):
            b.close()
    finally:
        stream.close()
    return out


def tensorrt_models(artifacts: Path, batches: Sequence[int]) -> list[dict]:
    from engine.build import BuildOptions
    from engine.cache import ensure_engine
    from runtime.model import open_backend
    from runtime.self_test import self_test

    results = []
    for folder in sorted(p for p in artifacts.iterdir() if p.is_dir()):
        for precision in TENSORRT_PRECISIONS:
            onnx_path = Artifacts(folder, folder.name).onnx(precision)
            if not onnx_path.is_file():
                continue
            row: dict = {"model": folder.name, "precision": precision}
            try:
                plan, manifest, why = ensure_engine(onnx_path, options=BuildOptions(flavour="tensorrt"))
                row.update(plan=str(plan), build=why, self_test=self_test(plan).to_dict(), latency_ms={})
                with open_backend(plan) as backend:
                    info = backend.inputs[0]
                    for batch in batches:
                        if batch > backend.max_batch:
                            continue
                        x = np.random.default_rng(0).random((batch,) + tuple(info.shape[1:]), np.float32)
                        row["latency_ms"][batch] = _time(lambda: backend.infer({info.name: x}))
            except Exception as exc:  # report and go on with the next model
                row["error"] = f"{type(exc).__name__}: {exc}"
            results.append(row)
            print(
                f"  {row['model']} {precision}: "
                + (
                    row.get("error")
                    or f"self-test {'PASS' if row['self_test']['passed'] else 'FAIL'}, latency {row['latency_ms']}"
                )
            )
    return results


def torch_baselines(artifacts: Path | None = None, batches: Sequence[int] = (1,)) -> list[dict]:
    """PyTorch eager and CUDA-graph latency of the course models (random init) at each batch size."""
    rows = []
    for name in ("mnist_cnn", "asl_cnn", "vgg16_transfer"):
        for batch in batches:
            rows.append(_torch_baseline(name, batch))
    return rows


def _torch_baseline(name: str, batch: int) -> dict:
    import torch

    from train.models import get_model

    device = torch.device("cuda")
    entry = get_model(name)
    spec = entry.spec(labels=tuple("abcdef")) if name == "vgg16_transfer" else entry.spec()
    model = entry.build(spec, "none").to(device).eval()
    dtype = torch.float16 if name == "vgg16_transfer" else torch.float32
    model = model.to(dtype)
    x = torch.randn((batch,) + spec.input_shape, device=device, dtype=dtype)
    with torch.inference_mode():

        def eager():
            model(x)
            torch.cuda.synchronize()

        eager_ms = _time(eager, 200)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                model(x)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            model(x)

        def replay():
            graph.replay()
            torch.cuda.synchronize()

        graph_ms = _time(replay, 200)
    row = {
        "model": name,
        "dtype": str(dtype).replace("torch.", ""),
        "batch": batch,
        "weights": "random init (latency only)",
        "eager_ms": eager_ms,
        "cuda_graph_ms": graph_ms,
    }
    print(f"  {name} bs{batch} {row['dtype']}: eager {eager_ms:.3f} ms, CUDA graph {graph_ms:.3f} ms")
    torch.cuda.empty_cache()
    return row


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "device-check",
        __doc__,
        [
            "edge device-check --artifacts artifacts --batch 1,8,64   # = make device-check on a GPU box or Jetson",
        ],
    )
    add_force_argument(parser)
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="model folders (default artifacts)")
    parser.add_argument("--batch", default="1,8,64", help="latency sweep batch sizes for engines")
    parser.add_argument("--out", type=Path, default=Path("device_report.json"), help="JSON report path")
    return parser


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_force(args.force)
    report: dict = {"doctor": [c.__dict__ for c in doctor.run_checks()], "skipped": {}}
    for c in doctor.run_checks():
        print(f"{c.status:8} {c.name:13} {c.detail}")
    from runtime import cuda

    try:
        has_gpu = cuda.device_count() > 0
    except Exception as exc:
        has_gpu, report["skipped"]["gpu"] = False, str(exc)
    if not has_gpu:
        report["skipped"]["everything on the GPU"] = "no CUDA GPU visible"
        print("skipped: no CUDA GPU visible — nothing here needs a GPU that the test suite did not already cover")
    else:
        print("\n== cuda-python layer")
        report["cuda_layer"] = cuda_layer()
        print(json.dumps(report["cuda_layer"], indent=1))
        try:
            import tensorrt  # noqa: F401

            print("\n== TensorRT engines: build, self-test, latency")
            batches = parse_batches(args.batch)
            report["tensorrt"] = tensorrt_models(args.artifacts, batches) if args.artifacts.is_dir() else []
        except ImportError as exc:
            report["skipped"]["tensorrt"] = f"standard TensorRT does not import ({exc})"
            print(
                f"skipped: TensorRT engines — standard TensorRT does not import here ({exc}); TensorRT-RTX "
                "engines run only on compute capability 8.0/8.6/8.9/12.x"
            )
        try:
            import torch

            if torch.cuda.is_available():
                print("\n== PyTorch eager vs CUDA graph, batch 1")
                report["torch_baselines"] = torch_baselines(args.artifacts)
            else:
                report["skipped"]["torch"] = "torch has no CUDA here"
        except ImportError as exc:
            report["skipped"]["torch"] = f"torch not installed ({exc})"
    write_artifact(args.out, json.dumps(report, indent=2, default=str) + "\n", Kind.REPORT)
    print(f"\nreport: {args.out}")
    failed = [r for r in report.get("tensorrt", []) if "error" in r or not r["self_test"]["passed"]]
    bad_copies = [c for c in report.get("cuda_layer", {}).get("copies", []) if not c["exact"]]
    return EXIT_CHECK_FAILED if failed or bad_copies else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
