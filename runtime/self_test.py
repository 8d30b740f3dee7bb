"""On-device self-test: run an engine on the golden inputs stored beside it and compare with the golden outputs.

The builder (``python -m engine``) writes ``<plan>.golden.npz`` — real calibration samples, already
preprocessed, and their outputs from the FP32 ONNX model — and its sha256 into the manifest. The
self-test checks the file's hash, runs the engine through the same backend lifecycle as inference,
and reports max |Δ| and top-1 agreement against budgets that depend on the engine's precision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from formats.artifacts import Precision, is_plan, plan_golden
from formats.bundle import verify_beside
from formats.engine_manifest import BuildFlags, EngineManifest, check_file
from formats.errors import RuntimeToolkitError
from formats.files import sha256_file

# precision → (max |Δ| allowed or None, minimum top-1 agreement) on the golden samples. What "parity" means
# per precision: an fp32 plan is built without TF32 (the builder clears the flag) and must match the FP32
# reference to 1e-3; with --tf32 its matmuls/convs round inputs to 10 mantissa bits, which on a real H100
# moved logits by up to 8e-3 (ONNX Runtime's CUDA EP, which uses TF32 too), so it gets 2e-2; fp16 5e-2;
# int8 is judged by agreement only (its logits move by design; the accuracy gate judges the task metric).
BUDGETS = {
    Precision.FP32: (1e-3, 1.0),
    Precision.FP16: (5e-2, 1.0),
    Precision.INT8: (None, 0.85),
    Precision.INT8_IMPLICIT: (None, 0.85),
}
TF32_BUDGET = (2e-2, 1.0)  # an fp32 plan built with TF32


def budget_for(precision: Precision, build_flags: BuildFlags) -> tuple[float | None, float]:
    """The self-test budget of an engine with this precision and these build flags (see BUDGETS)."""
    if precision is Precision.FP32 and build_flags.tf32:
        return TF32_BUDGET
    return BUDGETS.get(precision, (None, 0.85))


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
        return (
            f"self-test {'PASS' if self.passed else 'FAIL'} {self.engine} ({self.precision}): {self.samples} golden "
            f"samples, max |Δ| {self.max_abs_diff:.2e}, top-1 agreement {self.agreement:.1%} "
            f"(budget {budget}agreement ≥ {self.min_agreement:.0%})"
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def load_golden(plan: Path) -> tuple[np.ndarray, np.ndarray, EngineManifest]:
    manifest = check_file(plan)
    if not manifest.golden:
        raise SelfTestError(
            f"{plan}: its manifest has no golden I/O (built without a calibration set); rebuild "
            f"with the calibration set beside the ONNX file: {manifest.rebuild_command}"
        )
    path = plan_golden(plan)
    if not path.is_file() or sha256_file(path) != manifest.golden.sha256:
        raise SelfTestError(
            f"{path}: golden I/O missing or changed since the build; copy it with the plan or "
            f"rebuild: {manifest.rebuild_command}"
        )
    with np.load(path, allow_pickle=False) as data:
        return data["inputs"], data["outputs"], manifest


def self_test(plan: str | Path) -> SelfTestReport:
    from runtime.model import open_backend

    plan = Path(plan)
    if not is_plan(plan):
        raise SelfTestError(
            f"{plan}: --self-test checks TensorRT plans against the golden I/O in their manifest; "
            "for ONNX files use `python -m calibration.gate`"
        )
    verify_beside(plan)  # in a deploy bundle: a plan from this bundle's ONNX, its files unaltered
    inputs, expected, manifest = load_golden(plan)
    with open_backend(plan) as backend:
        got = backend.infer({backend.inputs[0].name: inputs.astype(backend.inputs[0].dtype)})[backend.outputs[0].name]
    tolerance, min_agreement = budget_for(manifest.precision, manifest.build_flags)
    return SelfTestReport(
        str(plan),
        manifest.precision,
        len(inputs),
        float(np.abs(got.astype(np.float32) - expected).max()),
        float((got.argmax(1) == expected.argmax(1)).mean()),
        tolerance,
        min_agreement,
    )
