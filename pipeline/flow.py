"""The whole pipeline for one model, as a library: train → export → deploy CLI → parity → latency → calibrate →
gate → engines → compare, returning typed reports (``ModelReport``, ``EngineResult``, ``DoggyDoorReport``).

``pipeline.demo`` is its command-line caller (the embedded demo budget, the printed tables, the JSON report).
What a step has to say goes to ``say`` (a ``Reporter``: the demo passes ``print``; the default logs at INFO);
the deploy CLIs it runs (``runtime.infer``, the doggy door) print their own output as they do for a user.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks import compare as precision_compare
from benchmarks.latency_line import LatencyComparison, compare_batch1
from calibration import real_photos, robustness
from calibration.calibrate import CalibrationOptions, CalibrationResult
from calibration.calibrate_and_gate import calibrate_and_gate
from calibration.gate import GateResult
from calibration.gate import markdown as gate_markdown
from calibration.robustness import RobustnessReport
from engine.build import BuildOptions
from engine.cache import ensure_engine
from export.onnx_export import export_fp32
from formats.artifacts import TENSORRT_PRECISIONS, Artifacts
from formats.errors import RuntimeToolkitError
from harness.parity import ParityReport, check_parity
from runtime import infer
from runtime.apps import doggy_door
from train.cards import FULL_BUDGET, TEST, DemoBudget, ModelCard, get_card
from train.checkpoint import load_checkpoint

Reporter = Callable[[str], None]  # one line of narration (no trailing newline)
_logger = logging.getLogger(__name__)


def held_out_accuracy(report: dict) -> float:
    return report["test"]["accuracy"] if "test" in report else report["val"]["accuracy"]


@dataclass(frozen=True)
class EngineResult:
    """One TensorRT precision of a model: built (with how, how long, how big) or why not."""

    precision: str
    built: bool
    reason: str  # why it was (re)built or reused, or why it could not be built
    plan: str | None = None
    flavour: str | None = None
    trt_version: str | None = None
    build_seconds: float | None = None
    bytes: int | None = None

    def to_dict(self) -> dict:
        if not self.built:
            return {"precision": self.precision, "built": False, "reason": self.reason}
        return {
            "precision": self.precision,
            "plan": self.plan,
            "built": True,
            "reason": self.reason,
            "flavour": self.flavour,
            "trt_version": self.trt_version,
            "build_seconds": self.build_seconds,
            "bytes": self.bytes,
        }


@dataclass(frozen=True)
class ModelReport:
    """Everything the flow measured for one model (``to_dict`` is its entry in ``demo_report.json``)."""

    model: str
    held_out: str
    accuracy: float  # on the held-out split, from the training report
    target_accuracy: float
    engine: Path  # the FP32 ONNX the deploy CLI ran
    parity: ParityReport
    latency: LatencyComparison
    calibration: CalibrationResult
    gate: GateResult
    engines: list[EngineResult]
    compare: list[precision_compare.Row]
    compare_files: dict[str, str]  # the comparison report files written beside the model
    robustness: RobustnessReport  # camera-like re-shots of the held-out split through the runtime
    real_photos: dict  # labelled real photos through the runtime (calibration.real_photos), or why skipped
    target_checked: bool = True  # False for a smoke run (``DemoBudget(smoke=True)``): the target needs the budget

    @property
    def accuracy_ok(self) -> bool:
        return self.accuracy >= self.target_accuracy

    @property
    def passed(self) -> bool:
        """The accuracy target (where the whole budget was trained), the parity gate and every precision's
        accuracy gate held."""
        return (self.accuracy_ok or not self.target_checked) and self.parity.passed and self.gate.passed

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "held_out": self.held_out,
            "accuracy": self.accuracy,
            "target_accuracy": self.target_accuracy,
            "accuracy_ok": self.accuracy_ok,
            "target_checked": self.target_checked,
            "engine": str(self.engine),
            "parity": self.parity.to_dict(),
            "latency": self.latency.to_dict(),
            "calibration": self.calibration.to_dict(),
            "gate": [r.to_dict() for r in self.gate.rows],
            "gate_passed": self.gate.passed,
            "engines": [e.to_dict() for e in self.engines],
            "compare": [{**r.__dict__, "throughput": r.throughput} for r in self.compare],
            "compare_files": self.compare_files,
            "robustness": self.robustness.to_dict(),
            "real_photos": self.real_photos,
        }


@dataclass(frozen=True)
class DoggyDoorReport:
    engine: Path
    exit_status: int  # the doggy-door CLI's own exit status

    def to_dict(self) -> dict:
        return {"engine": str(self.engine), "exit_status": self.exit_status}


def run_model(
    card: ModelCard,
    data_dir: Path,
    out: Path,
    progress: bool,
    say: Reporter = _logger.info,
    budget: DemoBudget = FULL_BUDGET,
) -> ModelReport:
    """One card's demo (``card.demo``): trained on its budget (or a smoke run's share of it), then through every
    later step of the pipeline."""
    demo, folder = card.demo, out / card.name
    say(f"\n== {card.name}: train → export → runtime → parity → latency → calibrate → gate → engines → compare")
    if budget.smoke:
        say(f"smoke run: 1 epoch on at most {budget.limit:,} training images; the accuracy target is not checked")
    demo.train(card, data_dir, folder, progress, budget)
    ckpt = load_checkpoint(Artifacts(folder, card.name).checkpoint)
    engine = export_fp32(ckpt.model, ckpt.spec, folder)
    say(f"exported {engine}")
    samples = demo.samples(data_dir, out)
    say(f"$ python -m runtime.infer --engine {engine} {' '.join(str(s) for s in samples)}")
    infer.main(["--engine", str(engine), *map(str, samples)])
    held_out = card.load_split(ckpt.spec, data_dir, TEST)
    parity = check_parity(ckpt.model, ckpt.spec, engine, held_out.images, held_out.labels)
    say(parity.summary())
    latency = compare_batch1(ckpt.model, ckpt.spec, engine, held_out.images[0])
    say(latency.summary())
    robust = robustness.run(engine, data_dir, demo.robustness_samples)  # before the gate, which cites it
    say(robust.line())
    real = evaluate_real_photos(card, data_dir, engine, held_out_accuracy(ckpt.metrics), say)  # the gate cites it
    calibration, gate = calibrate_and_gate(card.name, folder, data_dir, CalibrationOptions(), log=say)
    say(gate_markdown(gate.rows).rstrip("\n"))
    engines = build_engines(card.name, folder, say)
    rows = precision_compare.compare(
        card.name,
        folder,
        precision_compare.sample_images(card.name, folder),
        batches=(1, 64),
        duration_s=0.5,
        rounds=3,
        log=say,
    )
    return ModelReport(
        model=card.name,
        held_out=demo.held_out,
        accuracy=held_out_accuracy(ckpt.metrics),
        target_accuracy=demo.target_accuracy,
        engine=engine,
        parity=parity,
        latency=latency,
        calibration=calibration,
        gate=gate,
        engines=engines,
        compare=rows,
        compare_files=precision_compare.write_reports(card.name, folder, rows),
        robustness=robust,
        real_photos=real,
        target_checked=not budget.smoke,
    )


def evaluate_real_photos(card: ModelCard, data_dir: Path, engine: Path, reference: float, say: Reporter) -> dict:
    """The model on its labelled real photos, through the runtime (``edge evaluate``): one line with the gap to
    the held-out split. Skipped, saying why, where the model has no such set or the folder is absent."""
    demo = card.demo
    if demo.real_photos is None:
        return {"skipped": f"no labelled real-photo set for {card.name}"}
    root = data_dir / demo.real_photos
    if not root.is_dir():
        reason = f"{root} not found (real photos are evaluation data that a fresh machine does not have)"
        say(f"real photos: SKIPPED, {reason}")
        return {"skipped": reason}
    report = real_photos.run(engine, root)
    line = report.line(reference, demo.held_out)
    say(line)
    overall = report.overall.to_dict()
    return {
        "folder": str(root),
        "images": overall["images"],
        "accuracy": overall["accuracy"],
        "ci": overall["ci"],
        "gap_pp": 100 * (overall["accuracy"] - reference),
        "by_source": [s.to_dict() for s in report.by_source()],
        "line": line,
    }


def build_engines(name: str, folder: Path, say: Reporter = _logger.info) -> list[EngineResult]:
    """Every TensorRT precision file → plan with whatever TensorRT imports here (TensorRT-RTX ahead of time on a
    CPU machine). What cannot be built here is said, not hidden."""
    results = []
    for precision in TENSORRT_PRECISIONS:
        onnx_path = Artifacts(folder, name).onnx(precision)
        try:
            plan, manifest, why = ensure_engine(onnx_path, options=BuildOptions())
            results.append(
                EngineResult(
                    precision=precision,
                    built=True,
                    reason=why,
                    plan=str(plan),
                    flavour=manifest.flavour,
                    trt_version=manifest.trt_version,
                    build_seconds=manifest.build_seconds,
                    bytes=manifest.plan_bytes,
                )
            )
        except RuntimeToolkitError as exc:
            say(f"engine {precision}: NOT BUILT: {exc}")
            results.append(EngineResult(precision=precision, built=False, reason=str(exc)))
    try:
        from runtime.trt_import import import_tensorrt

        trt, flavour = import_tensorrt()
        if not hasattr(trt, "IInt8EntropyCalibrator2"):
            say(
                f"engine int8-implicit (calibration cache): not built: {flavour} {trt.__version__} has no "
                "calibrators (strongly typed); the cache is for TensorRT ≤ 10 on JetPack 5/6"
            )
    except RuntimeToolkitError:
        pass
    from runtime import cuda

    try:
        gpus = cuda.device_count()
    except RuntimeToolkitError:
        gpus = 0
    if not gpus and any(r.built for r in results):
        say(
            "engines built, not run: executing a plan needs a GPU with TensorRT (then `make device-check` and "
            "`python -m runtime.infer --engine X.plan --self-test`)"
        )
    return results


def run_doggy_door(data_dir: Path, out: Path, say: Reporter = _logger.info) -> DoggyDoorReport:
    say("\n== doggy door: EfficientNet-Lite0 ImageNet classifier (offline weights) → ONNX → runtime app")
    entry = get_card("efficientnet_lite0_imagenet")
    spec = entry.spec()
    engine = export_fp32(entry.build(spec, "imagenet"), spec, out / entry.name)
    photos = [data_dir / "dli_images" / f for f in ("happy_dog.jpg", "Penny.jpg", "brown_bear.jpg", "sleepy_cat.jpg")]
    return DoggyDoorReport(engine, doggy_door.main(["--engine", str(engine), *map(str, photos)]))
