"""Golden inputs and outputs for the on-device self-test (``runtime.infer --self-test``).

Real calibration samples (training split), preprocessed exactly as the runtime does, and their outputs from
the FP32 ONNX model through ONNX Runtime, stored as ``<plan>.golden.npz`` with its sha256 in the manifest.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from formats.artifacts import Artifacts, Precision, plan_golden
from formats.engine_manifest import Golden
from formats.files import sha256_file
from formats.writer import Kind, write_artifact

GOLDEN_SAMPLES = 8


def write_golden(plan: Path, inputs: np.ndarray, outputs: np.ndarray) -> Golden:
    """Preprocessed inputs and their FP32 reference outputs, for the on-device self-test."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, inputs=inputs.astype(np.float32), outputs=outputs.astype(np.float32))
    path = plan_golden(plan)
    write_artifact(path, buffer.getvalue(), Kind.GOLDEN)
    return Golden(path.name, sha256_file(path), int(len(inputs)))


def golden_from_calibration(onnx_path: Path, count: int = GOLDEN_SAMPLES) -> tuple[np.ndarray, np.ndarray] | None:
    """Golden I/O for a plan built from ``onnx_path``: a bundle's ``<model>.golden.npz`` when there is one, else
    the model's calibration set run through its FP32 ONNX (ONNX Runtime); None without either."""
    from formats.calibration_set import CalibrationSetError, load_calibration_set
    from runtime.model import Classifier
    from runtime.preprocess import normalize

    onnx_path = Path(onnx_path)
    names = Artifacts.of(onnx_path)
    shipped = names.golden
    if shipped.is_file():  # a deploy bundle's: the training machine's reference (verified by its SHA256SUMS)
        with np.load(shipped, allow_pickle=False) as data:
            return data["inputs"][:count], data["outputs"][:count]
    fp32 = names.onnx(Precision.FP32)
    try:
        calib = load_calibration_set(names)
    except CalibrationSetError:
        return None
    if not fp32.is_file():
        return None
    with Classifier.from_path(fp32) as clf:
        inputs = normalize(calib.images[:count], clf.spec)
        return inputs, clf.run(inputs)
