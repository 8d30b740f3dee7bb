"""The main job on the embedded defaults: train → export → runtime inference → parity → latency.

``python -m benchmarks.demo [--data-dir DIR] [--out artifacts]`` prints a short report and writes
``<out>/demo_report.json``. Exit status 1 when a model misses its accuracy target or its parity gate.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from PIL import Image

from benchmarks.latency_line import compare_batch1
from benchmarks.timing import environment
from export.onnx_export import ExportError, export_fp32
from export.parity import check_parity
from runtime import infer
from runtime.atomic import write_text_atomic
from runtime.errors import RuntimeToolkitError
from train.checkpoint import load_checkpoint
from train.data.mnist import load_mnist
from train.data.paths import DATA_DIR_ENV, resolve_data_dir
from train.errors import TrainError
from train.loop import TrainConfig
from train.mnist import train_mnist


@dataclass(frozen=True)
class DemoModel:
    name: str
    epochs: int
    target_accuracy: float  # test-split accuracy the demo budget must reach


# The demo budget: small enough for a 2-core CPU, large enough to meet the course's accuracy.
DEMO_MODELS = (
    DemoModel("mnist_mlp", epochs=5, target_accuracy=0.975),
    DemoModel("mnist_cnn", epochs=4, target_accuracy=0.990),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None, help=f"data root (default ${DATA_DIR_ENV} or ./data)")
    parser.add_argument("--out", type=Path, default=Path("artifacts"), help="artifact folder (default artifacts)")
    parser.add_argument("--models", default=",".join(m.name for m in DEMO_MODELS),
                        help="comma-separated subset of the demo models")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def write_samples(images, labels, folder: Path, count: int = 6) -> list[Path]:
    """A few real test digits as PNG files, to run the deploy CLI the way a user would."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"test{i:04d}_label{labels[i]}.png"
        Image.fromarray(images[i]).save(path)
        paths.append(path)
    return paths


def run_model(demo: DemoModel, data_dir: Path, out: Path, test, progress: bool) -> dict:
    folder = out / demo.name
    print(f"\n== {demo.name}: train {demo.epochs} epochs → export → runtime → parity → latency")
    train_mnist(demo.name, data_dir, folder, TrainConfig(epochs=demo.epochs), progress=progress)
    ckpt = load_checkpoint(folder / f"{demo.name}.pt")
    engine = export_fp32(ckpt.model, ckpt.spec, folder)
    print(f"exported {engine}")
    samples = write_samples(test.images, test.labels, out / "samples")
    print(f"$ python -m runtime.infer --engine {engine} {samples[0].parent}")
    infer.main(["--engine", str(engine), str(samples[0].parent)])
    parity = check_parity(ckpt.model, ckpt.spec, engine, test.images, test.labels)
    print(parity.summary())
    latency = compare_batch1(ckpt.model, ckpt.spec, engine, test.images[0])
    print(latency.summary())
    accuracy = ckpt.metrics["test"]["accuracy"]
    return {
        "model": demo.name, "test_accuracy": accuracy, "target_accuracy": demo.target_accuracy,
        "accuracy_ok": accuracy >= demo.target_accuracy, "engine": str(engine),
        "parity": parity.to_dict(), "latency": latency.to_dict(),
    }


def print_report(rows: list[dict]) -> None:
    print("\n| model | test acc | target | parity | max abs dlogit | runtime bs1 ms | torch bs1 ms | speedup |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        lat = r["latency"]
        print(f"| {r['model']} | {r['test_accuracy']:.4f} | {r['target_accuracy']:.3f} "
              f"| {'PASS' if r['parity']['passed'] else 'FAIL'} | {r['parity']['max_abs_diff']:.1e} "
              f"| {lat['runtime']['median_ms']:.3f} | {lat['torch_eager']['median_ms']:.3f} | {lat['speedup']:.2f}x |")


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
        test = load_mnist(data_dir, "test")
        rows = [run_model(known[name], data_dir, args.out, test, not args.no_progress) for name in wanted]
    except (TrainError, ExportError, RuntimeToolkitError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print_report(rows)
    report = {"environment": environment(), "models": rows}
    write_text_atomic(args.out / "demo_report.json", json.dumps(report, indent=2) + "\n")
    print(f"\nreport written to {args.out / 'demo_report.json'} (machine: {report['environment']['cpu']}, "
          f"{report['environment']['cores']} cores)")
    failed = [r["model"] for r in rows if not (r["accuracy_ok"] and r["parity"]["passed"])]
    if failed:
        print(f"FAILED: {', '.join(failed)} missed the accuracy target or the parity gate", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
