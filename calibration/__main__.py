"""``python -m calibration --model asl_cnn``: FP16 and calibrated INT8 variants, then the accuracy gate.

Reads ``<artifacts>/<model>.fp32.onnx``, ``<model>.json`` and ``<model>.pt`` (the reference for the
gate), writes the variants beside them (see ``calibration.calibrate``), judges every precision on the
test split (``calibration.gate``) and, when an INT8 file misses its budget, leaves the most
sensitive nodes in FP32 until it holds. Exit 0 when every budget holds, 1 when one still fails
(named), 2 on missing or broken inputs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from calibration.calibrate import CalibrationOptions
from calibration.calibrate_and_gate import calibrate_and_gate
from calibration.calibration_set import DEFAULT_SEED, DEFAULT_SIZE
from calibration.gate import markdown, verdict_lines
from calibration.ranges import Method
from formats.cli import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_USER_ERROR,
    command_parser,
    error_boundary,
    positive_int,
    random_seed,
)
from formats.errors import RuntimeToolkitError
from formats.writer import set_force
from train.data.paths import resolve_data_dir


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "calibrate",
        __doc__,
        [
            "edge calibrate --model asl_cnn --data-dir data          # fp16, int8, int8.ort + cache, then the gate",
            "edge calibrate --model mnist_cnn --artifacts artifacts/mnist_cnn --method percentile --calib-size 256",
            "edge gate --model asl_cnn --data-dir data --strict      # judge the files again",
        ],
    )
    parser.add_argument("--model", required=True, help="model name, e.g. mnist_cnn, asl_cnn")
    parser.add_argument("--artifacts", type=Path, default=None, help="the model's folder (default artifacts/<model>)")
    parser.add_argument("--data-dir", default=None, help="data root (default $EDGE_DATA_DIR or ./data)")
    parser.add_argument(
        "--folder",
        type=Path,
        default=None,
        help="image-folder data set root for transfer models (default <data-dir>/flowers)",
    )
    parser.add_argument(
        "--method",
        choices=[m.value for m in Method],
        default=Method.ENTROPY.value,
        help="calibration method (default entropy)",
    )
    parser.add_argument(
        "--calib-size",
        type=positive_int(10_000_000),
        default=None,
        help=f"calibration samples from the training split (default {DEFAULT_SIZE})",
    )
    parser.add_argument("--seed", type=random_seed(), default=DEFAULT_SEED, help="selection seed (default 0)")
    parser.add_argument(
        "--no-exclusion",
        action="store_true",
        help="report an INT8 budget miss instead of leaving sensitive nodes in FP32",
    )
    parser.add_argument("--force", action="store_true", help="replace output files of another kind")
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    return parser


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_force(args.force)
    artifacts = args.artifacts or Path("artifacts") / args.model
    data_dir = resolve_data_dir(args.data_dir)
    options = CalibrationOptions(Method(args.method), args.calib_size, args.seed, args.folder)
    # With --json, stdout carries only the JSON: progress (ours and ONNX Runtime's prints) goes to stderr.
    quiet = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    try:
        with quiet:
            result, gate = calibrate_and_gate(args.model, artifacts, data_dir, options, not args.no_exclusion)
    except (RuntimeToolkitError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    if args.json:
        print(
            json.dumps(
                {"calibration": result.to_dict(), "gate": [r.to_dict() for r in gate.rows], "passed": gate.passed},
                indent=2,
            )
        )
    else:
        print(markdown(gate.rows), end="")
    for line in verdict_lines(gate.rows):
        print(line, file=sys.stderr)
    return EXIT_OK if gate.passed else EXIT_CHECK_FAILED


if __name__ == "__main__":
    sys.exit(main())
