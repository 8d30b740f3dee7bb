"""``edge bench all FOLDER``: every model file × every backend this machine has, one table that decides.

For a model folder (what ``edge export`` / ``edge calibrate`` write) or an unpacked bundle: each ONNX file
(fp32, fp16, int8, int8.ort) on ONNX Runtime's CPU provider, on its CUDA provider (IOBinding, and CUDA graphs)
where onnxruntime has one, each TensorRT plan where a GPU runs it, and PyTorch eager where torch and the checkpoint
are here; what cannot run is listed with the reason. At batch 1 (latency) and a throughput batch (default 64):
file size, accuracy with its 95 % Wilson interval and the paired verdict against FP32 (the gate's statistics),
p50/p99 end to end (uint8 images → probabilities) and compute only (the backend call on a ready batch), each with
its spread (p10–p90, CoV; unstable above 2.5 %), images/s, peak memory (RSS delta), energy per image where a
power source is readable (``benchmarks.power``), and a recommendation per batch regime: the fastest file within
the card's budget (INT8: accuracy drop; others: agreement with FP32), with the reason in words. INT8 that is not
faster than FP16/FP32 is said plainly and not recommended.

Candidates are timed in interleaved rounds, so ratios (INT8 vs FP32, runtime vs eager) come from one run, round
by round. Accuracy comes from the card's held-out split when the data set is here (``--data-dir``, needs
PyTorch for the card), else from the labelled sample the gate writes and the bundle ships (``<m>.holdout.npz``).
Writes ``<m>.bench.json``, ``.csv``, ``.md`` and ``.png`` (where matplotlib is installed).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.decide import run_all
from benchmarks.decide_report import decide, markdown, write_reports
from formats.cli import EXIT_OK, command_parser, error_boundary, positive_int
from formats.writer import add_force_argument, set_force

EXAMPLES = (
    "edge bench all artifacts/mnist_cnn --data-dir data    # every file × backend, accuracy on the test split",
    "edge bench all mnist_cnn/ --batch 32 --json           # an unpacked bundle on a device (its held-out sample)",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, help="a model folder (edge export / calibrate) or an unpacked bundle")
    parser.add_argument("--model", default=None, help="model name (default: the one <model>.fp32.onnx there)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ["EDGE_DATA_DIR"]) if os.environ.get("EDGE_DATA_DIR") else None,
        help="the data sets, for the card's held-out split (default $EDGE_DATA_DIR; else the bundled sample)",
    )
    parser.add_argument("--batch", type=positive_int(4096), default=64, help="the throughput batch (default 64)")
    parser.add_argument("--rounds", type=positive_int(1000), default=5, help="interleaved rounds (default 5)")
    parser.add_argument(
        "--iterations", type=positive_int(100000), default=20, help="timed calls per candidate per round (default 20)"
    )
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: the model folder; a bundle: .)")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch eager out")
    parser.add_argument("--json", action="store_true", help="print the JSON report")
    add_force_argument(parser)


@error_boundary
def run(args: argparse.Namespace) -> int:
    set_force(args.force)
    log = functools.partial(print, file=sys.stderr) if args.json else print  # --json: stdout is the document
    report = run_all(
        args.folder, args.model, args.data_dir, args.batch, args.rounds, args.iterations, not args.no_torch, log
    )
    decision = decide(report)
    out = args.out or (Path(".") if (args.folder / "BUNDLE.json").is_file() else args.folder)
    files = write_reports(report, decision, out)
    print(Path(files["json"]).read_text() if args.json else markdown(report, decision), end="")
    if not args.json:
        print(f"written: {', '.join(files.values())}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = command_parser("bench all", __doc__, EXAMPLES)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
