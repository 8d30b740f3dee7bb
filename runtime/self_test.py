"""On-device self-test: run an engine on the golden inputs stored beside it and compare with the golden outputs.

The builder (``export.engine``) writes ``<plan>.golden.npz`` — real calibration samples, already
preprocessed, and their outputs from the FP32 ONNX model — and its sha256 into the manifest. The
self-test checks the file's hash, runs the engine through the same backend lifecycle as inference,
and reports max |Δ| and top-1 agreement against budgets that depend on the engine's precision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from runtime.engine_manifest import golden_path, preflight, sha256_file
from runtime.errors import RuntimeToolkitError

# precision → (max |Δ| allowed or None, minimum top-1 agreement) on the golden samples
BUDGETS = {"fp32": (1e-3, 1.0), "fp16": (5e-2, 1.0), "int8": (None, 0.85), "int8-implicit": (None, 0.85)}


class SelfTestError(RuntimeToolkitError):
    pass


@dataclass
class SelfTestReport:
    engine: str
    precision: str
    samples: int
    max_abs_diff: float
    agreement: float
    tolerance: float | None
    min_agreement: float

    @property
    def passed(self) -> bool:
        close = self.tolerance is None or self.max_abs_diff <= self.tolerance
        return close and self.agreement >= self.min_agreement

    def summary(self) -> str:
        budget = f"≤ {self.tolerance:g}, " if self.tolerance is not None else ""
        return (f"self-test {'PASS' if self.passed else 'FAIL'} {self.engine} ({self.precision}): {self.samples} golden "
                f"samples, max |Δ| {self.max_abs_diff:.2e}, top-1 agreement {self.agreement:.1%} "
                f"(budget {budget}agreement ≥ {self.min_agreement:.0%})")

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def load_golden(plan: Path) -> tuple[np.ndarray, np.ndarray, str]:
    manifest = preflight(plan)
    if not manifest.golden:
        raise SelfTestError(f"{plan}: its manifest has no golden I/O (built without a calibration set); rebuild "
                            f"with the calibration set beside the ONNX file: {manifest.rebuild_command}")
    path = golden_path(plan)
    if not path.is_file() or sha256_file(path) != manifest.golden["sha256"]:
        raise SelfTestError(f"{path}: golden I/O missing or changed since the build; copy it with the plan or "
                            f"rebuild: {manifest.rebuild_command}")
    with np.load(path, allow_pickle=False) as data:
        return data["inputs"], data["outputs"], manifest.precision


def self_test(plan: str | Path) -> SelfTestReport:
    from runtime.model import open_backend

    plan = Path(plan)
    if plan.suffix.lower() not in (".plan", ".engine", ".trt"):
        raise SelfTestError(f"{plan}: --self-test checks TensorRT plans against the golden I/O in their manifest; "
                            "for ONNX files use `python -m calibration.gate`")
    inputs, expected, precision = load_golden(plan)
    with open_backend(plan) as backend:
        got = backend.infer({backend.inputs[0].name: inputs.astype(backend.inputs[0].dtype)})[backend.outputs[0].name]
    tolerance, min_agreement = BUDGETS.get(precision, (None, 0.85))
    return SelfTestReport(str(plan), precision, len(inputs), float(np.abs(got.astype(np.float32) - expected).max()),
                          float((got.argmax(1) == expected.argmax(1)).mean()), tolerance, min_agreement)
