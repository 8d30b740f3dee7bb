"""One calibration run per model: calibration set → ranges → FP16, INT8 (TensorRT), INT8 (ONNX Runtime), cache.

Files written into the model's artifact folder, beside ``<name>.fp32.onnx``:

- ``<name>.calib.npz`` / ``<name>.calib.json``: the calibration set and its manifest;
- ``<name>.prep.onnx``: the FP32 graph prepared for quantization (BatchNorm folded), the graph the
  ranges and the cache describe (build the implicit-INT8 TensorRT engine from it);
- ``<name>.ranges.json``: the activation ranges (ONNX Runtime's format);
- ``<name>.fp16.onnx``, ``<name>.int8.onnx``, ``<name>.int8.ort.onnx``, ``<name>.calib.cache``;
- ``<name>.calibration-run.json``, last: the run id and the sha256 of every file above (``formats.calibration_run``).

Then the accuracy gate runs; when an INT8 file misses its budget, nodes are ranked by sensitivity and
the worst are left in FP32 until the budget holds (``calibration.sensitivity``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from calibration.calibration_set import DEFAULT_SEED, DEFAULT_SIZE, build_calibration_set, save_calibration_set
from calibration.ranges import Method, amax, calibrate, prepare, save_ranges
from calibration.variants import Precision, write_fp16, write_int8, write_int8_ort
from formats.artifacts import CALIBRATION_METHOD_KEY, CALIBRATION_SHA256_KEY, Artifacts
from formats.calib_cache import write_cache
from formats.calibration_run import RunId, write_run
from formats.calibration_set import TRAIN
from formats.writer import Kind, check_replace
from runtime.spec import ModelSpec
from train.cards import load_split
from train.errors import DataError

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CalibrationOptions:
    method: Method = Method.ENTROPY
    size: int | None = None  # None: DEFAULT_SIZE, or the whole split when it is smaller; a size asked for is kept
    seed: int = DEFAULT_SEED
    folder: Path | None = None  # image-folder data set root (transfer models)


@dataclass(frozen=True)
class CalibrationFiles:
    """What one calibration run wrote, each file named by ``formats.artifacts.Artifacts``."""

    calibration_set: Path
    calibration_manifest: Path
    prepared: Path
    ranges: Path
    fp16: Path
    int8: Path
    int8_ort: Path
    calib_cache: Path
    run: Path | None = None  # the run file, written last over all of the above

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
            **({"run": str(self.run)} if self.run else {}),
        }


@dataclass
class CalibrationResult:
    model: str
    files: CalibrationFiles
    calibration_sha256: str
    calibration_size: int
    method: Method
    fp16_kept_fp32: list[str]
    seconds: float
    excluded: dict[str, list[str]] = field(default_factory=dict)  # precision → nodes left in FP32 by the gate

    def to_dict(self) -> dict:
        return {**self.__dict__, "method": self.method.value, "files": self.files.to_dict()}


def check_outputs(names: Artifacts) -> None:
    """Refuse (unless ``--force``) any output path of the run that holds a file of another kind."""
    outputs = [
        (names.calibration_set, Kind.CALIB_SET),
        (names.calibration_manifest, Kind.CALIB_MANIFEST),
        (names.prep_onnx, Kind.ONNX),
    ]
    outputs += [(names.onnx(p), Kind.ONNX) for p in (Precision.FP16, Precision.INT8, Precision.INT8_ORT)]
    outputs += [(names.ranges, Kind.RANGES), (names.calib_cache, Kind.CALIB_CACHE)]
    for path, kind in outputs + [(names.calibration_run, Kind.CALIB_RUN)]:
        check_replace(path, kind)


def record_run(names: Artifacts, run: RunId, files: dict[str, str]) -> Path:
    """The run file over ``files`` (a CalibrationResult's, the run file itself left out): written last."""
    return write_run(names, run, [Path(f) for key, f in files.items() if key != "run"])


def model_artifacts(model: str, artifacts: Path) -> Artifacts:
    """The files of ``model`` in the folder ``artifacts``: the one ``Artifacts`` a run passes along. Model names
    become file names in the artifact folder: one that would leave it is refused."""
    try:
        return Artifacts(artifacts, model)
    except ValueError as exc:
        raise DataError(f"--model {model!r}: {exc}") from None


def calibrate_model(
    model: str,
    artifacts: Path,
    data_dir: Path,
    options: CalibrationOptions = CalibrationOptions(),
    log: Callable[[str], None] = _logger.info,
) -> CalibrationResult:
    start = time.perf_counter()
    names = model_artifacts(model, Path(artifacts))
    spec = ModelSpec.load(names.spec)
    check_outputs(names)  # before the run writes anything: no half run over a foreign file
    split = load_split(spec, data_dir, TRAIN, options.folder)
    # An explicit size larger than the split is refused (select_stratified says so), never silently clamped.
    size = options.size if options.size is not None else min(DEFAULT_SIZE, len(split.labels))
    calib = build_calibration_set(model, split, size, options.seed, spec)
    npz, manifest = save_calibration_set(calib, names)
    log(
        f"calibration set: {len(calib.labels)} samples from {calib.dataset}/{calib.split}, "
        f"{len(calib.class_counts())} classes, sha256 {calib.sha256[:12]}… → {manifest.name}"
    )
    prepared = prepare(names.onnx(Precision.FP32), names.prep_onnx)
    ranges = calibrate(prepared, calib, spec, options.method)
    ranges_file = save_ranges(ranges, names.ranges)
    log(f"{options.method.value} ranges for {len(ranges.data)} tensors → {ranges_file.name}")
    stamp = {CALIBRATION_SHA256_KEY: calib.sha256, CALIBRATION_METHOD_KEY: options.method.value}
    fp16, kept = write_fp16(prepared, spec, names.onnx(Precision.FP16), ranges, stamp)
    int8 = write_int8(prepared, ranges, spec, names.onnx(Precision.INT8), calibration=stamp)
    int8_ort = write_int8_ort(prepared, ranges, spec, names.onnx(Precision.INT8_ORT), calibration=stamp)
    cache = write_cache(names.calib_cache, amax(ranges))
    files = CalibrationFiles(npz, manifest, prepared, ranges_file, fp16, int8, int8_ort, cache)
    run = RunId(calib.sha256, options.method.value, options.seed, len(calib.labels))
    files = replace(files, run=record_run(names, run, files.to_dict()))
    log(f"wrote {fp16.name} ({len(kept)} node(s) kept FP32), {int8.name}, {int8_ort.name}, {cache.name}")
    return CalibrationResult(
        model, files, calib.sha256, len(calib.labels), options.method, kept, time.perf_counter() - start
    )
