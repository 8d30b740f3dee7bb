"""``python -m benchmarks <command>``: ``latency`` (one engine, batch sweep), ``compare`` (backends and
precisions side by side), ``ortgpu`` (ONNX Runtime on the GPU: IOBinding and CUDA graphs against the
floor), ``stream`` (1 to 8 concurrent video streams), ``triton`` (load test through the real Triton server vs
the in-process batcher), ``view`` (does a browser watching ``edge infer --view`` slow inference?)
(the main job is ``edge demo``, ``python -m pipeline.demo``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from benchmarks import compare, latency, live_view, ortgpu, serving, stream
from formats.cli import describe, error_boundary


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=describe(__doc__))
    commands = parser.add_subparsers(dest="command", required=True)
    latency.add_arguments(commands.add_parser("latency", help="latency statistics and a batch sweep for one engine"))
    compare.add_arguments(commands.add_parser("compare", help="PyTorch eager vs every precision of one model"))
    ortgpu.add_arguments(commands.add_parser("ortgpu", help="ONNX Runtime CUDA EP: run vs IOBinding vs CUDA graph"))
    stream.add_arguments(commands.add_parser("stream", help="frames/s and stage times for 1, 2, 4, 8 video streams"))
    serving.add_arguments(
        commands.add_parser(
            "triton", help="requests/s and p50/p95/p99 vs concurrency: Triton vs the in-process DynamicBatcher"
        )
    )
    live_view.add_arguments(commands.add_parser("view", help="frames/s with and without a --view viewer, interleaved"))
    args = parser.parse_args(argv)
    runners = {
        "latency": latency.run,
        "compare": compare.run,
        "ortgpu": ortgpu.run,
        "stream": stream.run,
        "triton": serving.run,
        "view": live_view.run,
    }
    return runners[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
