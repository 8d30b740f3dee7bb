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

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from calibration.data import TRAIN, check_model_name, load_split
from calibration.dataset import DEFAULT_SEED, DEFAULT_SIZE, build_calibration_set, save_calibration_set
from calibration.ranges import Method, amax, calibrate, prepare, save_ranges
from calibration.variants import Precision, write_fp16, write_int8, write_int8_ort
from runtime.artifacts import CALIBRATION_METHOD_KEY, CALIBRATION_SHA256_KEY, Artifacts
from runtime.calib_cache import write_cache
from runtime.spec import ModelSpec

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CalibrationOptions:
    method: Method = Method.ENTROPY
    size: int | None = None  # None: DEFAULT_SIZE, or the whole split when it is smaller; a size asked for is kept
    seed: int = DEFAULT_SEED
    folder: Path | None = None  # image-folder data set root (transfer models)


@dataclass(frozen=True)
class CalibrationFiles:
    """What one calibration run wrote, each file named by ``runtime.artifacts.Artifacts``."""

    calibration_set: Path
    calibration_manifest: Path
    prepared: Path
    ranges: Path
    fp16: Path
    int8: Path
    int8_ort: Path
    calib_cache: Path

    def to_dict(self) -> dict[str, str]:
        """The ``files`` object of ``python -m calibration --json`` (variants keyed by their precision)."""
        return {
            "calibration_set": str(self.calibration_set),
            "calibration_manifest": str(self.calibration_manifest),
            "prepared": str(self.prepared),
            "ranges": str(self.ranges),
            Precision.FP16.value: str(self.fp16),
            Precision.INT8.value: str(self.int8),
            Precision.INT8_ORT.value: str(self.int8_ort),
            "calib.cache": str(self.calib_cache),
        }


@dataclass
class CalibrationResult:
    model: str
    files: CalibrationFiles
    calibration_sha256: str
    calibration_size: int
    method: str
    fp16_kept_fp32: list[str]
    seconds: float
    excluded: dict[str, list[str]] = field(default_factory=dict)  # precision → nodes left in FP32 by the gate

    def to_dict(self) -> dict:
        return {**self.__dict__, "files": self.files.to_dict()}


def prepared_path(artifacts: Path, model: str) -> Path:
    return Artifacts(Path(artifacts), model).prep_onnx


def calibrate_model(
    model: str,
    artifacts: Path,
    data_dir: Path,
    options: CalibrationOptions = CalibrationOptions(),
    log: Callable[[str], None] = _logger.info,
) -> CalibrationResult:
    start = time.perf_counter()
    artifacts = Path(artifacts)
    check_model_name(model, artifacts)
    names = Artifacts(artifacts, model)
    spec = ModelSpec.load(names.spec)
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
    ranges_file = save_ranges(ranges, names.ranges)
    log(f"{options.method.value} ranges for {len(ranges.data)} tensors → {ranges_file.name}")
    stamp = {CALIBRATION_SHA256_KEY: calib.sha256, CALIBRATION_METHOD_KEY: options.method.value}
    fp16, kept = write_fp16(prepared, spec, Precision.FP16.path(artifacts, model), ranges, stamp)
    int8 = write_int8(prepared, ranges, spec, Precision.INT8.path(artifacts, model), calibration=stamp)
    int8_ort = write_int8_ort(prepared, ranges, spec, Precision.INT8_ORT.path(artifacts, model), calibration=stamp)
    cache = write_cache(names.calib_cache, amax(ranges))
    files = CalibrationFiles(npz, manifest, prepared, ranges_file, fp16, int8, int8_ort, cache)
    log(f"wrote {fp16.name} ({len(kept)} node(s) kept FP32), {int8.name}, {int8_ort.name}, {cache.name}")
    return CalibrationResult(
        model, files, calib.sha256, len(calib.labels), options.method.value, kept, time.perf_counter() - start
    )
