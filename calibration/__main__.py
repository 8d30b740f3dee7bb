"""``python -m calibration --model asl_cnn``: FP16 and calibrated INT8 variants, then the accuracy gate.

Reads ``<artifacts>/<model>.fp32.onnx``, ``<model>.json`` and ``<model>.pt`` (the reference for the
gate), writes the variants beside them (see ``calibration.pipeline``), judges every precision on the
test split (``calibration.gate``) and, when an INT8 file misses its budget, leaves the most
sensitive nodes in FP32 until it holds. Exit 0 when every budget holds, 1 when one still fails
(named), 2 on missing or broken inputs.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from calibration.data import TEST, load_split
from calibration.dataset import DEFAULT_SEED, DEFAULT_SIZE, CalibrationSetError, load_calibration_set
from calibration.gate import judge, markdown, reference_logits, run_gate
from calibration.pipeline import CalibrationOptions, calibrate_model, prepared_path
from calibration.ranges import Method, load_ranges
from calibration.sensitivity import exclude_until_budget, rank_nodes
from calibration.variants import WRITERS, Precision
from runtime.atomic import write_text_atomic
from runtime.errors import RuntimeToolkitError
from runtime.spec import ModelSpec
from train.data.paths import resolve_data_dir
from train.errors import DataError, TrainError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m calibration", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="model name, e.g. mnist_cnn, asl_cnn")
    parser.add_argument("--artifacts", type=Path, default=None, help="the model's folder (default artifacts/<model>)")
    parser.add_argument("--data-dir", default=None, help="data root (default $EDGE_DATA_DIR or ./data)")
    parser.add_argument("--folder", type=Path, default=None,
                        help="image-folder data set root for transfer models (default <data-dir>/flowers)")
    parser.add_argument("--method", type=Method, choices=list(Method), default=Method.ENTROPY,
                        help="calibration method (default entropy)")
    parser.add_argument("--calib-size", type=int, default=DEFAULT_SIZE,
                        help=f"calibration samples from the training split (default {DEFAULT_SIZE})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="selection seed (default 0)")
    parser.add_argument("--no-exclusion", action="store_true",
                        help="report an INT8 budget miss instead of leaving sensitive nodes in FP32")
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    return parser


def fix_int8(model: str, artifacts: Path, data_dir: Path, folder: Path | None, failing: Sequence[Precision],
             log=print) -> dict[str, dict]:
    """Leave the most sensitive nodes of each failing INT8 file in FP32 until its budget holds."""
    spec = ModelSpec.load(artifacts / f"{model}.json")
    calib = load_calibration_set(artifacts, model)
    prepared = prepared_path(artifacts, model)
    ranges = load_ranges(artifacts / f"{model}.ranges.json")
    split = load_split(spec, data_dir, TEST, folder)
    spec, reference = reference_logits(artifacts / f"{model}.pt", split)
    results = {}
    for precision in failing:
        log(f"{model} {precision.value} misses its budget: ranking nodes by sensitivity on the calibration set")
        ranking = rank_nodes(prepared, ranges, spec, calib, precision)
        log("  most sensitive: " + ", ".join(f"{n} ({s:.2e})" for n, s in ranking[:5]))
        out = precision.path(artifacts, model)

        def rewrite(excluded: list[str], precision=precision, out=out) -> Path:
            return WRITERS[precision](prepared, ranges, spec, out, exclude=excluded)

        def judge_file(path: Path, precision=precision) -> tuple[bool, float]:
            row, _ = judge(model, precision, path, split, spec, reference)
            return row.passed, row.drop_pp

        exclusion = exclude_until_budget(ranking, rewrite, judge_file, precision, spec, calib.images, log)
        log("  " + exclusion.summary())
        results[precision.value] = {**exclusion.__dict__, "ranking": ranking}
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    artifacts = args.artifacts or Path("artifacts") / args.model
    data_dir = resolve_data_dir(args.data_dir)
    options = CalibrationOptions(args.method, args.calib_size, args.seed, args.folder)
    try:
        result = calibrate_model(args.model, artifacts, data_dir, options)
        gate = run_gate(args.model, artifacts, data_dir, args.folder)
        failing = [Precision(r.precision) for r in gate.rows
                   if not r.passed and Precision(r.precision) in WRITERS]
        if failing and not args.no_exclusion:
            exclusions = fix_int8(args.model, artifacts, data_dir, args.folder, failing)
            result = replace(result, excluded={k: v["excluded"] for k, v in exclusions.items()})
            write_text_atomic(artifacts / f"{args.model}.exclusion.json", json.dumps(exclusions, indent=2) + "\n")
            gate = run_gate(args.model, artifacts, data_dir, args.folder)
    except (DataError, TrainError, CalibrationSetError, RuntimeToolkitError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"calibration": result.to_dict(), "gate": [r.to_dict() for r in gate.rows],
                          "passed": gate.passed}, indent=2))
    else:
        print(markdown(gate.rows), end="")
    for row in gate.rows:
        if not row.passed:
            print(f"FAIL {row.failure()}", file=sys.stderr)
    return 0 if gate.passed else 1


if __name__ == "__main__":
    sys.exit(main())
