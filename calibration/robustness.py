"""How a deployed model fares on camera-like re-shots of its test split, through the shipped runtime.

``python -m calibration.robustness --model artifacts/asl_cnn/asl_cnn.fp32.onnx [--data-dir DIR] [--samples 500]``

A seeded subset of the model's *test* split (the same images for every perturbation) is re-shot
by ``calibration.render`` — rotation, off-centre, zoom, a 4:3 / 3:4 / 16:9 frame, a lighting
gradient, a colour tint, blur, sensor noise, JPEG, 96–640 px — each perturbation on its own and
all of them combined, written as real JPEG/PNG files and classified by ``runtime.infer``'s own code
(``Classifier`` + ``classify_files``: the spec's decoding, colour conversion, resize policy and
normalization; torch is never involved). The clean accuracy on the whole test split is measured
through the same runtime. Writes ``<model file>.robustness.json`` and ``.md`` beside the model
(``asl_cnn.fp32.robustness.json`` for ``asl_cnn.fp32.onnx``).

The re-shots are for measuring only: nothing here trains or calibrates on them, and the seed is
fixed (``--seed``, default 0) so two runs see the same bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from calibration.real_photos import machine
from calibration.render import ALL, PERTURBATIONS, Perturbation, render
from calibration.splits import TEST, LabelledSplit, load_split
from formats.cli import (
    EXIT_OK,
    EXIT_USER_ERROR,
    command_parser,
    dumps,
    error_boundary,
    positive_int,
    random_seed,
)
from formats.errors import RuntimeToolkitError
from formats.writer import Kind, add_force_argument, declare_inputs, set_force, write_artifact
from runtime.infer import classify_files
from runtime.model import Classifier
from runtime.preprocess import preprocess_batch
from train.data.paths import resolve_data_dir
from train.errors import DataError

DEFAULT_SAMPLES = 500
DEMO_SAMPLES = 50  # the demo's per-condition count (about 12 s of CPU for a 28×28 model): a quick look
CONDITIONS: tuple[tuple[str, frozenset[Perturbation]], ...] = tuple(
    [(p.value, frozenset({p})) for p in PERTURBATIONS] + [("all", ALL)]
)


@dataclass(frozen=True)
class Condition:
    name: str  # a perturbation's name, or "all"
    images: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.images if self.images else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "accuracy": self.accuracy}


@dataclass
class RobustnessReport:
    model: str
    model_file: str
    test_split: str
    resize: str  # the spec's resize policy: how a non-square frame reaches the model
    clean_images: int
    clean_correct: int
    seed: int
    samples: int
    conditions: list[Condition] = field(default_factory=list)

    @property
    def clean_accuracy(self) -> float:
        return self.clean_correct / self.clean_images if self.clean_images else 0.0

    @property
    def combined(self) -> Condition:
        return next(c for c in self.conditions if c.name == "all")

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "model_file": self.model_file,
            "test_split": self.test_split,
            "resize": self.resize,
            "clean": {"images": self.clean_images, "correct": self.clean_correct, "accuracy": self.clean_accuracy},
            "seed": self.seed,
            "samples_per_condition": self.samples,
            "conditions": [c.to_dict() for c in self.conditions],
            "all_combined": self.combined.accuracy,
            "line": self.line(),
            "machine": machine(),
        }

    def line(self) -> str:
        """One line for the gate report and the demo: clean vs all perturbations combined, and the worst single one."""
        singles = [c for c in self.conditions if c.name != "all"]
        worst = min(singles, key=lambda c: c.accuracy)
        return (
            f"robustness: clean {self.clean_accuracy:.2%} ({self.clean_images}), camera re-shots all combined "
            f"{self.combined.accuracy:.2%} ({self.combined.images}, seed {self.seed}); "
            f"worst single: {worst.name} {worst.accuracy:.2%}"
        )

    def markdown(self) -> str:
        rows = [f"| clean (whole test split) | {self.clean_images} | {self.clean_accuracy:.2%} |"]
        rows += [f"| {c.name} | {c.images} | {c.accuracy:.2%} |" for c in self.conditions]
        return (
            f"# Robustness of {self.model} ({Path(self.model_file).name})\n\n"
            f"Camera-like re-shots of {self.test_split} (seed {self.seed}, the same {self.samples} images per row), "
            f"classified through the runtime (resize policy {self.resize}).\n\n"
            "| condition | images | accuracy |\n|---|---|---|\n" + "\n".join(rows) + "\n"
        )


def subset(count: int, samples: int, seed: int) -> np.ndarray:
    """A seeded choice of ``samples`` test indices (sorted), or all of them when there are fewer."""
    if samples >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).permutation(count)[:samples])


def write_reshots(
    split: LabelledSplit, indices: np.ndarray, active: frozenset[Perturbation], seed: int, folder: Path
) -> list[Path]:
    """Render the chosen test images into ``folder`` as ``<index>.jpg/.png`` files; the paths, in order."""
    paths = []
    for index in indices:
        data, kind = render(split.images[index], active, seed, int(index))
        name = f"{int(index):05d}.{'jpg' if kind == 'jpeg' else 'png'}"
        paths.append(write_artifact(folder / name, data, Kind.IMAGE, folder))
    return paths


def evaluate(
    model_file: Path,
    data_dir: Path,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    folder: Path | None = None,
    keep: Path | None = None,
    batch_size: int = 64,
    conditions: Sequence[tuple[str, frozenset[Perturbation]]] = CONDITIONS,
) -> RobustnessReport:
    """Clean accuracy on the whole test split and accuracy on each condition's re-shots, all via the runtime."""
    with Classifier.from_path(model_file) as classifier:
        spec = classifier.spec
        split = load_split(spec, data_dir, TEST, folder)
        clean = _clean_correct(classifier, split, batch_size)
        indices = subset(len(split.labels), samples, seed)
        report = RobustnessReport(
            spec.name,
            str(model_file),
            f"{split.dataset}/{split.split}",
            spec.resize.value,
            len(split.labels),
            clean,
            seed,
            len(indices),
        )
        with tempfile.TemporaryDirectory(prefix="reshots-") as scratch:
            for name, active in conditions:
                where = (keep or Path(scratch)) / name
                files = write_reshots(split, indices, active, seed, where)
                correct = 0
                for (path, outcome), index in zip(classify_files(classifier, files, batch_size, 1), indices):
                    if isinstance(outcome, Exception):  # our own renders: a failure here is a bug, not a bad input
                        raise DataError(f"{path}: the runtime could not read a re-shot ({outcome})")
                    correct += int(outcome.indices[0] == split.labels[index])
                report.conditions.append(Condition(name, len(indices), correct))
    return report


def _clean_correct(classifier: Classifier, split: LabelledSplit, batch_size: int) -> int:
    correct = 0
    for start in range(0, len(split.labels), 1024):
        batch = preprocess_batch(list(split.images[start : start + 1024]), classifier.spec)
        logits = classifier.run(batch, batch_size=batch_size)
        correct += int((logits.argmax(1) == split.labels[start : start + 1024]).sum())
    return correct


def run(model_file: Path, data_dir: Path, samples: int = DEFAULT_SAMPLES, folder: Path | None = None):
    """Evaluate and write the report beside the model (what the CLI and the demo do); the report."""
    report = evaluate(model_file, data_dir, samples, folder=folder)
    write_report(report, model_file)
    return report


def report_paths(model_file: Path) -> tuple[Path, Path]:
    """``asl_cnn.fp32.onnx`` → ``asl_cnn.fp32.robustness.json`` and ``.md``, beside it."""
    stem = model_file.name[: -len(model_file.suffix)] if model_file.suffix else model_file.name
    return model_file.with_name(f"{stem}.robustness.json"), model_file.with_name(f"{stem}.robustness.md")


def write_report(report: RobustnessReport, model_file: Path) -> tuple[Path, Path]:
    json_path, md_path = report_paths(model_file)
    write_artifact(json_path, json.dumps(report.to_dict(), indent=2) + "\n", Kind.REPORT)
    write_artifact(md_path, report.markdown(), Kind.TEXT)
    return json_path, md_path


def read_line(model_file: Path) -> str | None:
    """The one-line summary of a robustness report written beside ``model_file``, or None when there is none."""
    json_path = report_paths(model_file)[0]
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
        combined = doc["all_combined"]
        clean = doc["clean"]["accuracy"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return f"robustness ({json_path.name}): clean {clean:.2%}, camera re-shots all combined {combined:.2%}"


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "robustness",
        __doc__,
        [
            "edge robustness --model artifacts/asl_cnn/asl_cnn.fp32.onnx --data-dir data     # 500 re-shots per row",
            "edge robustness --model artifacts/mnist_cnn/mnist_cnn.fp32.onnx --samples 100 --json --keep shots/",
        ],
    )
    parser.add_argument("--model", required=True, type=Path, help="the exported model (.onnx; its spec beside it)")
    parser.add_argument("--data-dir", default=None, help="data root (default $EDGE_DATA_DIR or ./data)")
    parser.add_argument("--folder", type=Path, default=None, help="image-folder data set root for transfer models")
    parser.add_argument(
        "--samples", type=positive_int(), default=DEFAULT_SAMPLES, help="test images re-shot per condition"
    )
    parser.add_argument(
        "--seed", type=random_seed(), default=0, help="the renderer's seed (fixed: same seed, same bytes)"
    )
    parser.add_argument("--keep", type=Path, default=None, help="also keep the re-shots in this folder")
    parser.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    add_force_argument(parser)
    return parser


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_force(args.force)
    declare_inputs(args.model)
    try:
        if not args.model.is_file():
            raise DataError(f"{args.model}: model file not found; give an exported .onnx (`python -m export`)")
        report = evaluate(args.model, resolve_data_dir(args.data_dir), args.samples, args.seed, args.folder, args.keep)
        files = write_report(report, args.model)
    except (RuntimeToolkitError, OSError) as exc:
        if args.json:
            print(dumps({"error": str(exc)}))
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    if args.json:
        print(dumps(report.to_dict()))
    else:
        print(report.markdown(), end="")
        print(report.line())
        print(f"written: {', '.join(str(f) for f in files)}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
