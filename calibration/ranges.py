"""Activation ranges from one calibration run with ONNX Runtime's calibrators.

The FP32 export is first prepared for quantization with ``quant_pre_process`` (shape inference and
ONNX Runtime's basic graph optimizations: BatchNorm folded into the convolution before it, constants
folded), so a Q/DQ pair never separates a convolution from its BatchNorm. That prepared graph is
calibrated once; every int8 form and the TensorRT cache are written from the same ranges, which are
kept as ``<name>.ranges.json`` in ONNX Runtime's own format (``save_tensors_data``).
"""

from __future__ import annotations

import enum
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod
from onnxruntime.quantization.calibrate import TensorsData, create_calibrator, load_tensors_data, save_tensors_data
from onnxruntime.quantization.shape_inference import quant_pre_process

from calibration.calibration_set import CalibrationSet
from formats.artifacts import Artifacts
from formats.calibration_run import check_run
from formats.logs import quiet_logs
from formats.writer import Kind, artifact_path
from runtime.preprocess import normalize
from runtime.spec import ModelSpec


class Method(str, enum.Enum):
    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"

    @property
    def ort(self) -> CalibrationMethod:
        return {
            Method.MINMAX: CalibrationMethod.MinMax,
            Method.ENTROPY: CalibrationMethod.Entropy,
            Method.PERCENTILE: CalibrationMethod.Percentile,
        }[self]


PERCENTILE = 99.999
CALIBRATION_BATCH = 32
CALIBRATION_CHUNK = 64


class SpecDataReader(CalibrationDataReader):
    """Feeds the calibration images, preprocessed exactly as the runtime does, in batches."""

    def __init__(self, calib: CalibrationSet, spec: ModelSpec, batch_size: int = CALIBRATION_BATCH) -> None:
        # Equal batches: ONNX Runtime's histogram collectors stack per-batch outputs and fail on a short
        # last batch, so use the largest batch size ≤ batch_size that divides the set.
        size = len(calib.labels)
        batch_size = next(b for b in range(min(batch_size, size), 0, -1) if size % b == 0)
        self.calib, self.spec, self.batch_size = calib, spec, batch_size
        self._batches: Iterator[dict[str, np.ndarray]] | None = None
        self.rewind()

    def __len__(self) -> int:
        return -(-len(self.calib.labels) // self.batch_size)

    def _generate(self) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self.calib.labels), self.batch_size):
            yield {self.spec.input_name: normalize(self.calib.images[start : start + self.batch_size], self.spec)}

    def rewind(self) -> None:
        self._batches = self._generate()

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def prepare(fp32: Path, out: Path) -> Path:
    """``quant_pre_process`` into ``out`` (BatchNorm folded, shapes inferred); returns ``out``.

    Written to a temp file beside ``out``, checked, then renamed: a full disk leaves the previous file (or none),
    never a truncated one, and the error names ``out``."""
    try:
        with quiet_logs("onnxruntime", level=logging.WARNING), artifact_path(out, Kind.ONNX) as tmp:
            quant_pre_process(str(fp32), str(tmp), skip_symbolic_shape=True)
            onnx.checker.check_model(str(tmp))
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(out)) from None
    return out


def calibrate(prepared: Path, calib: CalibrationSet, spec: ModelSpec, method: Method = Method.ENTROPY) -> TensorsData:
    """Ranges of every float activation of ``prepared`` over the calibration set."""
    extra = {"percentile": PERCENTILE} if method is Method.PERCENTILE else {}
    if method is Method.MINMAX:
        extra["max_intermediate_outputs"] = 4  # reduce every few batches: bounded memory on big inputs
    with tempfile.TemporaryDirectory(prefix="edge-calib-") as tmp:
        calibrator = create_calibrator(
            prepared,
            None,
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=method.ort,
            extra_options=extra,
            providers=["CPUExecutionProvider"],
        )
        # One chunk per collect_data call: ONNX Runtime keeps every intermediate output of a call in
        # memory (hundreds of MB per batch at 224²), and its collectors accumulate across calls.
        for chunk in calib.chunks(CALIBRATION_CHUNK):
            calibrator.collect_data(SpecDataReader(chunk, spec))
        ranges = calibrator.compute_data()
        del calibrator
    return ranges


def save_ranges(ranges: TensorsData, path: Path) -> Path:
    """Atomic, verified, and with the usual permissions (ONNX Runtime's own writer leaves 0600)."""
    with artifact_path(path, Kind.RANGES) as tmp:
        save_tensors_data(ranges, tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp-like 0600 otherwise; every other artifact is 0644
        load_tensors_data(tmp)  # verify what will land
    return Path(path)


def load_ranges(path: Path) -> TensorsData:
    """The ranges, refused when the folder's calibration run file records another ``*.ranges.json``."""
    path = Path(path)
    names = Artifacts.of(path)
    if names.ranges == path:
        check_run(names, [path])
    return load_tensors_data(path)


def amax(ranges: TensorsData) -> dict[str, float]:
    """Symmetric range (max |lowest|, |highest|) of every calibrated tensor."""
    out = {}
    for name, data in ranges.items():
        low, high = data.range_value
        out[name] = float(max(abs(float(np.asarray(low).max())), abs(float(np.asarray(high).max()))))
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
