"""The main job on the embedded defaults: train → export → calibrate → build → parity → benchmark.

``python -m benchmarks.demo [--data-dir DIR] [--out artifacts] [--models ...]`` covers the three
course models (MNIST MLP and CNN, the ASL CNN, EfficientNet-Lite0 transfer learning on flowers)
and the doggy door, prints a short report and writes ``<out>/demo_report.json``. Exit status 1
when a model misses its accuracy target or its parity gate.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks import compare as precision_compare
from benchmarks.latency_line import compare_batch1
from benchmarks.timing import environment
from calibration import robustness
from calibration.dataset import CalibrationSetError
from calibration.gate import markdown as gate_markdown
from calibration.pipeline import CalibrationOptions
from calibration.workflow import calibrate_and_gate
from engine.build import BuildOptions, EngineBuildError
from engine.cache import ensure_engine
from export.onnx_export import ExportError, export_fp32
from export.parity import check_parity
from runtime import infer
from runtime.apps import doggy_door
from runtime.atomic import write_text_atomic
from runtime.cli import describe, error_boundary
from runtime.errors import RuntimeToolkitError
from runtime.spec import ModelSpec
from train.asl import train_asl
from train.checkpoint import load_checkpoint
from train.data.image_folder import load_image_folder
from train.data.mnist import load_mnist
from train.data.paths import DATA_DIR_ENV, resolve_data_dir
from train.data.sign_mnist import load_sign_mnist
from train.errors import TrainError
from train.loop import TrainConfig
from train.mnist import train_mnist
from train.models import get_model
from train.transfer import train_transfer


@dataclass(frozen=True)
class TransferBudget:
    head: TrainConfig
    finetune: TrainConfig


# The demo budget: small enough for a 2-core CPU. Targets are what this budget reaches reliably here;
# the issues' full-run targets and what full runs reached are in the README.
ASL_BUDGET = TrainConfig(epochs=8, batch_size=32)
# EfficientNet-Lite0 on the 400-photo flowers subset: 1e-6 (the course's VGG16 rate) does not move
# this backbone in a demo's few epochs; 2e-4 with label smoothing plateaus at about 90.5 % val here.
TRANSFER_BUDGET = TransferBudget(
    head=TrainConfig(epochs=3, lr=3e-3, batch_size=32, val_fraction=0.2, label_smoothing=0.1),
    finetune=TrainConfig(epochs=8, lr=2e-4, batch_size=32, label_smoothing=0.1),
)


@dataclass(frozen=True)
class DemoModel:
    name: str
    target_accuracy: float  # on the held-out split named by `held_out`
    held_out: str
    train: Callable[[Path, Path, bool], dict]  # (data_dir, out folder, progress) → training report
    held_out_data: Callable[[Path, ModelSpec], tuple[np.ndarray, np.ndarray]]  # uint8 pixels at the spec's size
    samples: Callable[[Path, Path], list[Path]]  # (data_dir, out) → image files for the deploy CLI
    data: str  # the folder under the data root that this model needs

    def missing_data(self, data_dir: Path) -> str | None:
        """Why this model cannot run here, or None. Only MNIST can be fetched from the package index."""
        if (data_dir / self.data).is_dir():
            return None
        how = {
            "sign_mnist": "download the Sign-MNIST CSVs from Kaggle (datamunge/sign-language-mnist)",
            "flowers": (
                "put an ImageFolder there: train/<class>/*.jpg and val/<class>/*.jpg (e.g. TensorFlow flower_photos)"
            ),
        }.get(self.data, "run `make data`")
        return f"{data_dir / self.data} not found; {how}"


def _mnist_test(data_dir: Path, spec: ModelSpec | None = None):
    test = load_mnist(data_dir, "test")
    return test.images, test.labels


def _asl_test(data_dir: Path, spec: ModelSpec):
    test = load_sign_mnist(data_dir, "test")
    return test.images, test.labels


def _flowers_val(data_dir: Path, spec: ModelSpec):
    """The flowers val photos, resized and centre-cropped as the spec says (what the runtime feeds the model)."""
    val = load_image_folder(data_dir / "flowers" / "val", spec, classes=spec.labels)
    return val.images, val.labels


def _mnist_samples(data_dir: Path, out: Path) -> list[Path]:
    """A few real test digits as PNG files, to run the deploy CLI the way a user would."""
    images, labels = _mnist_test(data_dir)
    folder = out / "samples" / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(6):
        paths.append(folder / f"test{i:04d}_label{labels[i]}.png")
        Image.fromarray(images[i]).save(paths[-1])
    return paths


def _asl_samples(data_dir: Path, out: Path) -> list[Path]:
    return [data_dir / "dli_images" / "A.jpg", data_dir / "dli_images" / "B.jpg"]  # colour photos, as in lab 4


def _flower_samples(data_dir: Path, out: Path) -> list[Path]:
    return [sorted((data_dir / "flowers" / "val" / c).iterdir())[0] for c in ("daisy", "roses", "sunflowers")]


DEMO_MODELS = (
    DemoModel(
        "mnist_mlp",
        0.975,
        "MNIST test (10k)",
        lambda d, o, p: train_mnist("mnist_mlp", d, o, TrainConfig(epochs=5), progress=p),
        _mnist_test,
        _mnist_samples,
        "mnist",
    ),
    DemoModel(
        "mnist_cnn",
        0.990,
        "MNIST test (10k)",
        lambda d, o, p: train_mnist("mnist_cnn", d, o, TrainConfig(epochs=5), progress=p),
        _mnist_test,
        _mnist_samples,
        "mnist",
    ),
    DemoModel(
        "asl_cnn",
        0.99,
        "Sign-MNIST test (7,172)",
        lambda d, o, p: train_asl(d, o, ASL_BUDGET, progress=p),
        _asl_test,
        _asl_samples,
        "sign_mnist",
    ),
    DemoModel(
        "efficientnet_lite0_transfer",
        0.90,
        "flowers val (200)",
        lambda d, o, p: train_transfer(
            "efficientnet_lite0",
            "imagenet",
            d / "flowers",
            o,
            head=TRANSFER_BUDGET.head,
            finetune=TRANSFER_BUDGET.finetune,
            progress=p,
        ),
        _flowers_val,
        _flower_samples,
        "flowers",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.demo", description=describe(__doc__))
    parser.add_argument("--data-dir", default=None, help=f"data root (default ${DATA_DIR_ENV} or ./data)")
    parser.add_argument("--out", type=Path, default=Path("artifacts"), help="artifact folder (default artifacts)")
    parser.add_argument(
        "--models", default=",".join(m.name for m in DEMO_MODELS), help="comma-separated subset of the demo models"
    )
    parser.add_argument("--no-doggy-door", action="store_true", help="skip the doggy-door example")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def held_out_accuracy(report: dict) -> float:
    return report["test"]["accuracy"] if "test" in report else report["val"]["accuracy"]


def run_model(demo: DemoModel, data_dir: Path, out: Path, progress: bool) -> dict:
    folder = out / demo.name
    print(f"\n== {demo.name}: train → export → runtime → parity → latency → calibrate → gate → engines → compare")
    demo.train(data_dir, folder, progress)
    ckpt = load_checkpoint(folder / f"{demo.name}.pt")
    engine = export_fp32(ckpt.model, ckpt.spec, folder)
    print(f"exported {engine}")
    samples = demo.samples(data_dir, out)
    print(f"$ python -m runtime.infer --engine {engine} {' '.join(str(s) for s in samples)}")
    infer.main(["--engine", str(engine), *map(str, samples)])
    images, labels = demo.held_out_data(data_dir, ckpt.spec)
    parity = check_parity(ckpt.model, ckpt.spec, engine, images, labels)
    print(parity.summary())
    latency = compare_batch1(ckpt.model, ckpt.spec, engine, images[0])
    print(latency.summary())
    accuracy = held_out_accuracy(ckpt.metrics)
    folder_arg = data_dir / demo.data if demo.data == "flowers" else None
    robust = robustness.run(engine, data_dir, robustness.DEMO_SAMPLES, folder_arg)  # before the gate, which cites it
    print(robust.line())
    calibration, gate = calibrate_and_gate(demo.name, folder, data_dir, CalibrationOptions(folder=folder_arg))
    print(gate_markdown(gate.rows), end="")
    engines = build_engines(demo.name, folder)
    rows = precision_compare.compare(
        demo.name, folder, precision_compare.sample_images(demo.name, folder), batches=(1, 64), duration_s=0.5, rounds=3
    )
    compare_files = precision_compare.write_reports(demo.name, folder, rows)
    return {
        "model": demo.name,
        "held_out": demo.held_out,
        "accuracy": accuracy,
        "target_accuracy": demo.target_accuracy,
        "accuracy_ok": accuracy >= demo.target_accuracy,
        "engine": str(engine),
        "parity": parity.to_dict(),
        "latency": latency.to_dict(),
        "calibration": calibration.to_dict(),
        "gate": [r.to_dict() for r in gate.rows],
        "gate_passed": gate.passed,
        "robustness": robust.to_dict(),
        "engines": engines,
        "compare": [{**r.__dict__, "throughput": r.throughput} for r in rows],
        "compare_files": compare_files,
    }


def build_engines(name: str, folder: Path) -> list[dict]:
    """Every TensorRT precision file → plan with whatever TensorRT imports here (TensorRT-RTX ahead of time on a
    CPU machine). What cannot be built here is said, not hidden."""
    results = []
    for precision in ("fp32", "fp16", "int8"):
        onnx_path = folder / f"{name}.{precision}.onnx"
        try:
            plan, manifest, why = ensure_engine(onnx_path, options=BuildOptions())
            results.append(
                {
                    "precision": precision,
                    "plan": str(plan),
                    "built": True,
                    "reason": why,
                    "flavour": manifest.flavour,
                    "trt_version": manifest.trt_version,
                    "build_seconds": manifest.build_seconds,
                    "bytes": manifest.plan_bytes,
                }
            )
        except (EngineBuildError, RuntimeToolkitError) as exc:
            print(f"engine {precision}: NOT BUILT: {exc}")
            results.append({"precision": precision, "built": False, "reason": str(exc)})
    try:
        from runtime.trt_import import import_tensorrt

        trt, flavour = import_tensorrt()
        if not hasattr(trt, "IInt8EntropyCalibrator2"):
            print(
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
    if not gpus and any(r["built"] for r in results):
        print(
            "engines built, not run: executing a plan needs a GPU with TensorRT (then `make device-check` and "
            "`python -m runtime.infer --engine X.plan --self-test`)"
        )
    return results


def run_doggy_door(data_dir: Path, out: Path) -> dict:
    print("\n== doggy door: EfficientNet-Lite0 ImageNet classifier (offline weights) → ONNX → runtime app")
    entry = get_model("efficientnet_lite0_imagenet")
    spec = entry.spec()
    engine = export_fp32(entry.build(spec, "imagenet"), spec, out / entry.name)
    photos = [data_dir / "dli_images" / f for f in ("happy_dog.jpg", "Penny.jpg", "brown_bear.jpg", "sleepy_cat.jpg")]
    rc = doggy_door.main(["--engine", str(engine), *map(str, photos)])
    return {"engine": str(engine), "exit_status": rc}


def print_precision_report(rows: list[dict]) -> None:
    done = [r for r in rows if "skipped" not in r]
    if not done:
        return
    print("\n== accuracy gate (test split, ONNX Runtime CPU vs FP32 PyTorch)")
    print("| model | precision | accuracy | Δ pp | agreement | budget | verdict |")
    print("|---|---|---|---|---|---|---|")
    for r in done:
        for g in r["gate"]:
            print(
                f"| {r['model']} | {g['precision']} | {g['accuracy']:.4f} | {0.0 - g['drop_pp'] + 0.0:+.2f} "
                f"| {g['agreement']:.2%} | {g['budget']} | {'PASS' if g['passed'] else 'FAIL'} |"
            )
    print("\n== engines (TensorRT-family builds on this machine)")
    for r in done:
        for e in r["engines"]:
            status = (
                (
                    f"built with {e['flavour']} {e['trt_version']} in {e['build_seconds']:.1f} s, "
                    f"{e['bytes'] / 1e6:.2f} MB ({e['reason']})"
                )
                if e["built"]
                else f"NOT BUILT: {e['reason']}"
            )
            print(f"{r['model']} {e['precision']}: {status}")
    print("\n== comparison (median ms end to end from decoded images; ratios in this run)")
    print("| model | candidate | bs1 ms | bs1 × eager | bs64 ms | bs64 × ORT FP32 | accuracy |")
    print("|---|---|---|---|---|---|---|")
    for r in done:
        by = {}
        for c in r["compare"]:
            by.setdefault(c["candidate"], {})[c["batch"]] = c
        for name, b in by.items():
            acc = b[1]["accuracy"]
            print(
                f"| {r['model']} | {name} | {b[1]['median_ms']:.3f} | {b[1]['vs_torch']:.2f} "
                f"| {b[64]['median_ms']:.3f} | {b[64]['vs_ort_fp32']:.2f} | {'' if acc is None else f'{acc:.4f}'} |"
            )


def print_report(rows: list[dict]) -> None:
    print(
        "\n| model | held-out split | accuracy | target | parity | max abs dlogit"
        " | runtime bs1 ms | torch bs1 ms | speedup |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['model']} | SKIPPED: {r['skipped']} | | | | | | | |")
            continue
        lat = r["latency"]
        print(
            f"| {r['model']} | {r['held_out']} | {r['accuracy']:.4f} | {r['target_accuracy']:.3f} "
            f"| {'PASS' if r['parity']['passed'] else 'FAIL'} | {r['parity']['max_abs_diff']:.1e} "
            f"| {lat['runtime']['median_ms']:.3f} | {lat['torch_eager']['median_ms']:.3f} | {lat['speedup']:.2f}x |"
        )
    for r in rows:
        if "robustness" in r:
            print(f"{r['model']} {r['robustness']['line']}")


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    wanted = [m.strip() for m in args.models.split(",") if m.strip()]
    known = {m.name: m for m in DEMO_MODELS}
    unknown = [m for m in wanted if m not in known]
    if unknown:
        print(f"error: unknown demo model(s) {unknown}; choose from {sorted(known)}", file=sys.stderr)
        return 2
    data_dir = resolve_data_dir(args.data_dir)
    try:
        rows = []
        for name in wanted:
            reason = known[name].missing_data(data_dir)
            if reason:
                print(f"\n== {name}: SKIPPED, {reason}")
                rows.append({"model": name, "skipped": reason})
            else:
                rows.append(run_model(known[name], data_dir, args.out, not args.no_progress))
        door = None
        if not args.no_doggy_door and not (data_dir / "dli_images").is_dir():
            print(f"\n== doggy door: SKIPPED, {data_dir / 'dli_images'} (the course photos) not found")
        elif not args.no_doggy_door:
            door = run_doggy_door(data_dir, args.out)
    except (TrainError, ExportError, RuntimeToolkitError, CalibrationSetError, EngineBuildError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print_report(rows)
    print_precision_report(rows)
    report = {"environment": environment(), "models": rows, "doggy_door": door}
    write_text_atomic(args.out / "demo_report.json", json.dumps(report, indent=2) + "\n")
    print(
        f"\nreport written to {args.out / 'demo_report.json'} (machine: {report['environment']['cpu']}, "
        f"{report['environment']['cores']} cores)"
    )
    failed = [
        r["model"]
        for r in rows
        if "skipped" not in r and not (r["accuracy_ok"] and r["parity"]["passed"] and r["gate_passed"])
    ]
    if door is not None and door["exit_status"] != 0:
        failed.append("doggy_door")
    if failed:
        print(
            f"FAILED: {', '.join(failed)} missed the accuracy target, the parity gate or the precision gate",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
