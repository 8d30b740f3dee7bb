"""Calibrate, gate, and fix INT8 by exclusion: the flow behind ``python -m calibration`` and the demo."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from calibration.calibrate import CalibrationOptions, CalibrationResult, calibrate_model, model_artifacts
from calibration.calibration_set import load_calibration_set
from calibration.gate import GateResult, judge, reference_result, run_gate
from calibration.ranges import load_ranges
from calibration.run_check import METHOD_KEY, SHA_KEY, calibration_lock, variant_stamps
from calibration.sensitivity import exclude_until_budget, rank_nodes
from calibration.variants import WRITERS, Precision
from formats.artifacts import Artifacts
from formats.calibration_run import check_run, load_run, write_run
from formats.writer import Kind, write_artifact
from runtime.spec import ModelSpec
from train.cards import TEST, load_split

_logger = logging.getLogger(__name__)


def fix_int8(
    names: Artifacts,
    data_dir: Path,
    folder: Path | None,
    failing: Sequence[Precision],
    log: Callable[[str], None] = _logger.info,
) -> dict[str, dict]:
    """Leave the most sensitive nodes of each failing INT8 file in FP32 until its budget holds."""
    model = names.model
    spec = ModelSpec.load(names.spec)
    calib = load_calibration_set(names)
    prepared = names.prep_onnx
    ranges = load_ranges(names.ranges)
    split = load_split(spec, data_dir, TEST, folder)
    spec, reference = reference_result(names.checkpoint, split, model)
    stamps = variant_stamps(names)  # the rewritten files keep their run id
    run = check_run(names)  # every file still the one its run derived, before any is rewritten
    results = {}
    for precision in failing:
        log(f"{model} {precision.value} misses its budget: ranking nodes by sensitivity on the calibration set")
        ranking = rank_nodes(prepared, ranges, spec, calib, precision)
        log("  most sensitive: " + ", ".join(f"{n} ({s:.2e})" for n, s in ranking[:5]))
        out = names.onnx(precision)

        def rewrite(excluded: list[str], precision=precision, out=out) -> Path:
            sha, method = stamps.get(out, (None, None))
            stamp = {SHA_KEY: sha, METHOD_KEY: method or ""} if sha else None
            return WRITERS[precision](prepared, ranges, spec, out, exclude=excluded, calibration=stamp)

        def judge_file(path: Path, precision=precision) -> tuple[bool, float]:
            row, _ = judge(model, precision, path, split, spec, reference)
            return row.passed, row.drop_pp

        exclusion = exclude_until_budget(ranking, rewrite, judge_file, precision, spec, calib.images, log)
        log("  " + exclusion.summary())
        results[precision.value] = {**exclusion.__dict__, "ranking": ranking}
    loaded = load_run(names)
    if run is not None and loaded is not None:  # the rewritten variants belong to the same run: record their sha256
        listed = [names.folder / name for name in loaded[1]]
        write_run(names, run, [p for p in listed if p.is_file()])
    return results


def calibrate_and_gate(
    model: str,
    artifacts: Path,
    data_dir: Path,
    options: CalibrationOptions = CalibrationOptions(),
    exclusion: bool = True,
    log: Callable[[str], None] = _logger.info,
) -> tuple[CalibrationResult, GateResult]:
    """Variants → gate → (sensitivity exclusion for a failing INT8 → gate again)."""
    names = model_artifacts(model, Path(artifacts))
    with calibration_lock(names):  # a second run of this model here is refused, not interleaved
        result = calibrate_model(model, artifacts, data_dir, options, log)
        gate = run_gate(model, artifacts, data_dir, options.folder)
        failing = [r.precision for r in gate.rows if not r.passed and r.precision in WRITERS]
        if failing and exclusion:
            exclusions = fix_int8(names, data_dir, options.folder, failing, log)
            result = replace(result, excluded={k: v["excluded"] for k, v in exclusions.items()})
            text = json.dumps(exclusions, indent=2) + "\n"
            write_artifact(names.exclusion, text, Kind.REPORT, names.folder)
            gate = run_gate(model, artifacts, data_dir, options.folder)
    return result, gate
