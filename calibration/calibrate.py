"""One calibration run per model: calibration set → ranges → FP16, INT8 (TensorRT), INT8 (ONNX Runtime), cache.

Files written into the model's artifact folder, beside ``<name>.fp32.onnx``:

- ``<name>.calib.npz`` / ``<name>.calib.json``: the calibration set and its manifest;
- ``<name>.prep.onnx``: the FP32 graph prepared for quantization (BatchNorm folded), the graph the
  ranges and the cache describe (build the implicit-INT8 TensorRT engine from it);
- ``<name>.ranges.json``: the activation ranges (ONNX Runtime's format);
- ``<name>.fp16.onnx``, ``<name>.int8.onnx``, ``<name>.int8.ort.onnx``, ``<name>.calib.cache``.

Then the accuracy gate runs; when an INT8 file misses its budget, nodes are ranked by sensitivity and
the worst are left in FP32 until the budget holds (``calibration.sensitivity``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from calibration.calibration_set import DEFAULT_SEED, DEFAULT_SIZE, build_calibration_set, save_calibration_set
from calibration.ranges import Method, amax, calibrate, prepare, save_ranges
from calibration.splits import TRAIN, check_model_name, load_split
from calibration.variants import Precision, write_fp16, write_int8, write_int8_ort
from runtime.calib_cache import write_cache
from runtime.spec import ModelSpec


@dataclass(frozen=True)
class CalibrationOptions:
    method: Method = Method.ENTROPY
    size: int | None = None  # None: DEFAULT_SIZE, or the whole split when it is smaller; a size asked for is kept
    seed: int = DEFAULT_SEED
    folder: Path | None = None  # image-folder data set root (transfer models)


@dataclass
class CalibrationResult:
    model: str
    files: dict[str, str]
    calibration_sha256: str
    calibration_size: int
    method: str
    fp16_kept_fp32: list[str]
    seconds: float
    excluded: dict[str, list[str]] = field(default_factory=dict)  # precision → nodes left in FP32 by the gate

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def prepared_path(artifacts: Path, model: str) -> Path:
    return Path(artifacts) / f"{model}.prep.onnx"


def calibrate_model(
    model: str, artifacts: Path, data_dir: Path, options: CalibrationOptions = CalibrationOptions(), log=print
) -> CalibrationResult:
    start = time.perf_counter()
    artifacts = Path(artifacts)
    check_model_name(model, artifacts)
    spec = ModelSpec.load(artifacts / f"{model}.json")
    split = load_split(spec, data_dir, TRAIN, options.folder)
    # An explicit size larger than the split is refused (select_stratified says so), never silently clamped.
    size = options.size if options.size is not None else min(DEFAULT_SIZE, len(split.labels))
    calib = build_calibration_set(model, split, size, options.seed)
    npz, manifest = save_calibration_set(calib, artifacts)
    log(
        f"calibration set: {len(calib.labels)} samples from {calib.dataset}/{calib.split}, "
        f"{len(calib.class_counts())} classes, sha256 {calib.sha256[:12]}… → {manifest.name}"
    )
    prepared = prepare(Precision.FP32.path(artifacts, model), prepared_path(artifacts, model))
    ranges = calibrate(prepared, calib, spec, options.method)
    ranges_file = save_ranges(ranges, artifacts / f"{model}.ranges.json")
    log(f"{options.method.value} ranges for {len(ranges.data)} tensors → {ranges_file.name}")
    stamp = {"edge_toolkit.calibration_sha256": calib.sha256, "edge_toolkit.calibration_method": options.method.value}
    fp16, kept = write_fp16(prepared, spec, Precision.FP16.path(artifacts, model), ranges, stamp)
    int8 = write_int8(prepared, ranges, spec, Precision.INT8.path(artifacts, model), calibration=stamp)
    int8_ort = write_int8_ort(prepared, ranges, spec, Precision.INT8_ORT.path(artifacts, model), calibration=stamp)
    cache = write_cache(artifacts / f"{model}.calib.cache", amax(ranges))
    files = {
        "calibration_set": str(npz),
        "calibration_manifest": str(manifest),
        "prepared": str(prepared),
        "ranges": str(ranges_file),
        "fp16": str(fp16),
        "int8": str(int8),
        "int8.ort": str(int8_ort),
        "calib.cache": str(cache),
    }
    log(f"wrote {fp16.name} ({len(kept)} node(s) kept FP32), {int8.name}, {int8_ort.name}, {cache.name}")
    return CalibrationResult(
        model, files, calib.sha256, len(calib.labels), options.method.value, kept, time.perf_counter() - start
    )
