"""``edge bench <command>`` (``python -m benchmarks``): ``all`` (every file × backend of one model folder or
bundle, one table that recommends), ``latency`` (one engine, batch sweep), ``compare`` (backends and
precisions side by side), ``ortgpu`` (ONNX Runtime on the GPU: IOBinding and CUDA graphs against the
floor), ``stream`` (1 to 8 concurrent video streams), ``triton`` (load test through the real Triton server vs
the in-process batcher), ``view`` (does a browser watching ``edge infer --view`` slow inference?), ``power``
(which power source is readable here, for energy per inference)
(the main job is ``edge demo``, ``python -m pipeline.demo``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from benchmarks import bench_all, compare, latency, live_view, ortgpu, power, serving, stream
from formats.cli import command_parser, describe, error_boundary, examples


def _add(commands: argparse._SubParsersAction, name: str, module: ModuleType, help: str) -> None:
    """One benchmark as ``edge bench <name>``: its own description and examples (the module's ``EXAMPLES``)."""
    parser = commands.add_parser(
        name, help=help, description=describe(module.__doc__), epilog=examples(*module.EXAMPLES)
    )
    module.add_arguments(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "bench",
        __doc__,
        [*bench_all.EXAMPLES[:1], *latency.EXAMPLES, *compare.EXAMPLES, *stream.EXAMPLES[:1], *serving.EXAMPLES],
    )
    commands = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="{all,latency,compare,ortgpu,stream,triton,view,power}",
        help="which benchmark",
    )
    _add(commands, "all", bench_all, "every file × backend of one model: accuracy, latency, memory, energy; recommends")
    _add(commands, "latency", latency, "latency statistics and a batch sweep for one engine")
    _add(commands, "compare", compare, "PyTorch eager vs every precision of one model")
    _add(commands, "ortgpu", ortgpu, "ONNX Runtime CUDA EP: run vs IOBinding vs CUDA graph")
    _add(commands, "stream", stream, "frames/s and stage times for 1, 2, 4, 8 video streams")
    _add(commands, "triton", serving, "requests/s and p50/p95/p99 vs concurrency: Triton vs the in-process batcher")
    _add(commands, "view", live_view, "frames/s with and without a --view viewer, interleaved")
    _add(commands, "power", power, "which power source this machine has (Jetson rails, NVML, RAPL) and a reading")
    return parser


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    runners = {
        "all": bench_all.run,
        "latency": latency.run,
        "compare": compare.run,
        "ortgpu": ortgpu.run,
        "stream": stream.run,
        "triton": serving.run,
        "view": live_view.run,
        "power": power.run,
    }
    return runners[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
