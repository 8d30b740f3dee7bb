"""Accuracy on labelled real photographs, through the runtime a user runs: ``edge evaluate --model M.onnx DIR``.

``python -m calibration.real_photos --model artifacts/mnist_cnn/mnist_cnn.fp32.onnx ../shared/data/digits_real``

Labels come from the photos' names: a sub-folder named after a class (``DIR/7/photo.jpg``, ImageFolder style)
or the label before the first ``_`` of the file name (``7_wikunia_2.png``, ``a_massey_0.jpg``). The source of
each photo (who took it) comes from the ``source`` column of a ``manifest.csv`` in its folder or one above it
(up to DIR's parent), else from the middle of ``<label>_<source>_<n>``. Every photo goes through the model's
own runtime path — ``runtime.model.Classifier`` and ``runtime.infer.classify_files``, so the ModelSpec's
decoding and preprocessing, exactly as ``edge infer`` — and the report gives the accuracy with its 95 % Wilson
interval (``calibration.statistics``, the gate's statistics), per source, per sub-folder and per class, and the
confusion matrix. It writes ``<model file>.real.json``, ``.real.md`` and ``.real.png`` (the confusion matrix
on a log colour scale, so a single mistake shows; skipped where matplotlib is not installed, as on a device)
beside the model or in ``--out``. Torch-free: it runs in the device profile.

A landmark model (spec ``input_kind: hand_landmarks``), or an image model with ``--hands``, reads each photo
through the hand stage (``runtime.hand_classify``, as ``edge infer`` does): a photo where no hand is found gets no
letter and counts as **wrong**; the report says how many, per source, gives the accuracy on the photos with a hand
found beside it, and the confusion matrix has a "no hand" column.

Photos whose label cannot be read, and files that are not readable images, are listed and skipped (exit 1);
the rest are still scored. Real-photo folders are scoreboards: never train, tune or choose on them.
"""

# Over 400 lines: labels, evaluation, statistics, the three report writers and the CLI of one command; the
# report writers are the candidates to move out (beside the gate's) when a second real-photo command appears.

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calibration.statistics import CONFIDENCE, Interval, wilson_interval
from formats.artifacts import RealPhotoFiles, real_photo_files
from formats.cli import (
    EXIT_OK,
    EXIT_SOME_INPUTS_BAD,
    EXIT_USER_ERROR,
    command_parser,
    dumps,
    error_boundary,
    positive_int,
    safe,
)
from formats.errors import InputError, RuntimeToolkitError
from formats.writer import Kind, add_force_argument, set_force, write_artifact, write_figure
from runtime.backends.table import BackendOptions, OnnxRuntimeOptions
from runtime.infer import classify_files
from runtime.model import Classifier
from runtime.preprocess import find_images
from runtime.spec import InputKind
from train.errors import DataError

MANIFEST = "manifest.csv"
UNKNOWN_SOURCE = "-"
NO_HAND = -1  # the predicted index of a photo where the hand stage found no hand (always wrong)
NO_HAND_LABEL = "no hand"


@dataclass(frozen=True)
class Photo:
    path: Path
    label: int  # index into the spec's labels
    source: str  # who took it (manifest.csv, else the middle of the file name), or "-"
    folder: str  # the sub-folder under the evaluated root, label folders left out ("." for the root)


@dataclass(frozen=True)
class Score:
    """Right answers among the photos of one group, with the 95 % Wilson interval of the accuracy."""

    name: str
    images: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.images if self.images else float("nan")

    @property
    def interval(self) -> Interval | None:
        return wilson_interval(self.correct, self.images) if self.images else None

    def text(self) -> str:
        """``93.0 % (132/142, 95 % CI 87.6–96.1 %)``."""
        if not self.images:
            return "no photos"
        return f"{self.accuracy:.1%} ({self.correct}/{self.images}, 95 % CI {self.interval.percent()} %)"

    def to_dict(self) -> dict:
        ci = self.interval
        return {
            "name": self.name,
            "images": self.images,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "ci": [ci.low, ci.high] if ci else None,
        }


def _score(name: str, right: np.ndarray) -> Score:
    return Score(name, int(right.size), int(right.sum()))


def _groups(keys: Sequence[str], right: np.ndarray) -> list[Score]:
    names = sorted(set(keys))
    keyed = np.asarray(keys, dtype=object)
    return [_score(name, right[keyed == name]) for name in names]


@dataclass
class RealPhotoReport:
    model: str
    model_file: str
    root: str
    labels: tuple[str, ...]
    photos: list[Photo]
    predicted: np.ndarray  # (N,) class index per photo, NO_HAND where the hand stage found none
    probability: np.ndarray  # (N,) the top-1 probability (0 for no hand)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why)
    hand_stage: bool = False  # read through the hand stage: a "no hand" column, and accuracy on the found hands

    @property
    def found(self) -> np.ndarray:
        return self.predicted != NO_HAND

    @property
    def truth(self) -> np.ndarray:
        return np.asarray([p.label for p in self.photos], dtype=np.int64)

    @property
    def right(self) -> np.ndarray:
        return self.predicted == self.truth

    @property
    def overall(self) -> Score:
        return _score("all", self.right)

    def by_source(self) -> list[Score]:
        return _groups([p.source for p in self.photos], self.right)

    def by_folder(self) -> list[Score]:
        return _groups([p.folder for p in self.photos], self.right)

    def by_class(self) -> list[Score]:
        truth, right = self.truth, self.right
        return [_score(label, right[truth == i]) for i, label in enumerate(self.labels) if (truth == i).any()]

    def on_found_hands(self) -> Score:
        """The accuracy on the photos where the hand stage found a hand (the no-hand photos left out)."""
        return _score("hand found", self.right[self.found])

    def no_hand_by_source(self) -> dict[str, int]:
        sources = np.asarray([p.source for p in self.photos], dtype=object)
        return {name: int((~self.found[sources == name]).sum()) for name in sorted(set(sources))}

    @property
    def columns(self) -> tuple[str, ...]:
        """The confusion matrix's predicted labels: the model's, then "no hand" with a hand stage."""
        return tuple(self.labels) + ((NO_HAND_LABEL,) if self.hand_stage else ())

    def confusion(self) -> np.ndarray:
        """Counts, true class × predicted class (``labels`` order; a last "no hand" column with a hand stage)."""
        matrix = np.zeros((len(self.labels), len(self.columns)), dtype=np.int64)
        np.add.at(matrix, (self.truth, self.predicted), 1)  # NO_HAND (-1) lands in the last column
        return matrix

    def line(self, reference: float | None = None, reference_name: str = "test split") -> str:
        """One line for the demo and the gate: the accuracy, its interval, per source, and the gap to ``reference``."""
        sources = ", ".join(f"{s.name} {s.correct}/{s.images}" for s in self.by_source())
        gap = ""
        if reference is not None:
            gap = (
                f"; gap to the {reference_name} ({reference:.2%}): {100 * (self.overall.accuracy - reference):+.1f} pp"
            )
        where = f"{Path(self.root).name}, {self.overall.images}"
        hands = ""
        if self.hand_stage:
            missing = int((~self.found).sum())
            hands = f"; no hand in {missing} (counted wrong); on found hands {self.on_found_hands().text()}"
        return f"real photos ({where}): {self.overall.text()}{gap}; per source: {sources}{hands}"

    def to_dict(self) -> dict:
        overall = self.overall
        return {
            "model": self.model,
            "model_file": self.model_file,
            "root": self.root,
            "confidence": CONFIDENCE,
            "images": overall.images,
            "correct": overall.correct,
            "accuracy": overall.accuracy,
            "ci": overall.to_dict()["ci"],
            "by_source": [s.to_dict() for s in self.by_source()],
            "by_folder": [s.to_dict() for s in self.by_folder()],
            "by_class": [s.to_dict() for s in self.by_class()],
            "labels": list(self.labels),
            "confusion_columns": list(self.columns),
            "confusion": self.confusion().tolist(),
            "hand_stage": self.hand_stage,
            **(self._hand_fields() if self.hand_stage else {}),
            "predictions": [
                {
                    "file": str(p.path),
                    "source": p.source,
                    "folder": p.folder,
                    "label": self.labels[p.label],
                    "predicted": self.columns[int(k)],
                    "probability": float(q),
                }
                for p, k, q in zip(self.photos, self.predicted, self.probability)
            ],
            "skipped": [{"file": f, "error": why} for f, why in self.skipped],
            "line": self.line(),
            "machine": machine(),
        }

    def _hand_fields(self) -> dict:
        return {
            "no_hand": int((~self.found).sum()),
            "no_hand_by_source": self.no_hand_by_source(),
            "on_found_hands": self.on_found_hands().to_dict(),
        }

    def markdown(self) -> str:
        def table(title: str, scores: list[Score]) -> str:
            rows = "\n".join(f"| {safe(s.name)} | {s.images} | {s.correct} | {s.text()} |" for s in scores)
            head = f"| {title.split()[-1]} | photos | right | accuracy (95 % CI) |\n|---|---|---|---|"
            return f"\n## {title}\n\n{head}\n{rows}\n"

        worst = self._mistakes()
        text = (
            f"# Real photos: {self.model} ({Path(self.model_file).name}) on {Path(self.root).name}\n\n"
            f"{self.overall.text()} on {self.overall.images} labelled photos in `{self.root}`, classified through "
            + (
                "the runtime's hand stage, then the model (as `edge infer`)"
                if self.hand_stage
                else "the runtime (`edge infer`'s preprocessing, from the model's spec)"
            )
            + ". Intervals: 95 % Wilson.\n"
            + table("per source", self.by_source())
            + (table("per sub-folder", self.by_folder()) if len(self.by_folder()) > 1 else "")
            + table("per class", self.by_class())
        )
        if self.hand_stage:
            missing = ", ".join(f"{name} {n}" for name, n in self.no_hand_by_source().items())
            text += (
                f"\nRead through the hand stage: no hand found in {int((~self.found).sum())} photos (counted wrong "
                f"above; per source: {missing}); on the {int(self.found.sum())} photos with a hand found: "
                f"{self.on_found_hands().text()}.\n"
            )
        if worst:
            text += "\n## most frequent mistakes (true → predicted)\n\n" + "\n".join(worst) + "\n"
        if self.skipped:
            text += f"\n{len(self.skipped)} file(s) skipped:\n\n" + "\n".join(f"- {safe(w)}" for _, w in self.skipped)
            text += "\n"
        return text

    def _mistakes(self, count: int = 10) -> list[str]:
        matrix = self.confusion()
        np.fill_diagonal(matrix, 0)
        cells = sorted(((int(matrix[t, p]), t, p) for t, p in zip(*np.nonzero(matrix))), reverse=True)[:count]
        return [f"- {self.labels[t]} → {self.columns[p]}: {n}" for n, t, p in cells]


def machine() -> str:
    """The CPU model (from /proc/cpuinfo where there is one) and the core count, for the report."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            name = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


# --- finding the labelled photos ---------------------------------------------------------------


def _label_lookup(labels: Sequence[str]) -> dict[str, int]:
    """Exact labels, plus their lower-case form where that stays unambiguous (``A_x.jpg`` for label ``a``)."""
    lookup = {label: i for i, label in enumerate(labels)}
    lowered: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        lowered.setdefault(label.lower(), []).append(i)
    for key, indices in lowered.items():
        if len(indices) == 1:
            lookup.setdefault(key, indices[0])
    return lookup


def _find(name: str, lookup: dict[str, int]) -> int | None:
    return lookup.get(name, lookup.get(name.lower()))


def _manifest_sources(folder: Path) -> dict[str, str]:
    """file name → source from ``folder/manifest.csv``; empty when there is none or it has no such columns."""
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read this manifest ({exc}); fix or remove it") from None
    return {row["file"]: row["source"] for row in rows if row.get("file") and row.get("source")}


class _Sources:
    """The ``manifest.csv`` files from a photo's folder up to the root's parent, read once each."""

    def __init__(self, root: Path) -> None:
        self.top = root.parent
        self.read: dict[Path, dict[str, str]] = {}

    def of(self, path: Path) -> str | None:
        folder = path.parent
        while True:
            if folder not in self.read:
                self.read[folder] = _manifest_sources(folder)
            if path.name in self.read[folder]:
                return self.read[folder][path.name]
            if folder == self.top or folder.parent == folder:
                return None
            folder = folder.parent


def label_photos(root: Path, labels: Sequence[str]) -> tuple[list[Photo], list[tuple[str, str]]]:
    """The labelled photos under ``root`` and the (file, why) of each image whose label cannot be read."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"{root}: not a folder; give a folder of labelled photos (sub-folders named after the classes, "
            "or files named <label>_<source>_<n>.jpg)"
        )
    lookup, sources = _label_lookup(labels), _Sources(root)
    photos, skipped = [], []
    for path in find_images(root):
        parts = path.relative_to(root).parts[:-1]
        label, folder = None, parts
        for depth in range(len(parts) - 1, -1, -1):  # the nearest class-named folder wins
            if (label := _find(parts[depth], lookup)) is not None:
                folder = parts[:depth] + parts[depth + 1 :]
                break
        name = path.stem.split("_")
        if label is None:
            label = _find(name[0], lookup)
        if label is None:
            skipped.append((str(path), f"{path}: no label: neither a class-named folder nor a label before '_'"))
            continue
        source = sources.of(path) or ("_".join(name[1:-1]) if len(name) >= 3 else UNKNOWN_SOURCE)
        photos.append(Photo(path, label, source, "/".join(folder) or "."))
    return photos, skipped


# --- evaluating ------------------------------------------------------------------------------


def evaluate(
    model_file: Path,
    root: Path,
    batch_size: int = 32,
    providers: str | None = None,
    threads: int | None = None,
    hands: bool = False,
    hand_models: Path | None = None,
) -> RealPhotoReport:
    """Classify every labelled photo under ``root`` with ``model_file`` through the runtime; the report. A landmark
    model always (an image model with ``hands``) reads through the hand stage, from ``hand_models`` (default: the
    model's folder): no hand found is a wrong answer, counted apart."""
    model_file, root = Path(model_file), Path(root)
    if not model_file.is_file():
        raise DataError(f"{model_file}: model file not found; give an exported .onnx (`edge export`) or a .plan")
    options = BackendOptions(OnnxRuntimeOptions(providers, threads))
    with Classifier.from_path(model_file, options) as classifier:
        spec = classifier.spec
        photos, skipped = label_photos(root, spec.labels)
        if not photos:
            raise DataError(
                f"{root}: no labelled photos for {spec.name} (labels {', '.join(spec.labels[:12])}…); name "
                "sub-folders after the classes or files <label>_<source>_<n>.jpg"
            )
        hands = hands or spec.input_kind is InputKind.HAND_LANDMARKS
        files = [p.path for p in photos]
        if hands:
            outcomes = _through_hands(classifier, files, hand_models or model_file.parent, options)
        else:
            outcomes = (outcome for _, outcome in classify_files(classifier, files, batch_size, 1))
        kept, predicted, probability = [], [], []
        for photo, outcome in zip(photos, outcomes):
            if isinstance(outcome, InputError):
                skipped.append((str(photo.path), str(outcome)))
                continue
            kept.append(photo)
            predicted.append(outcome.indices[0] if outcome is not None else NO_HAND)
            probability.append(outcome.probability if outcome is not None else 0.0)
    if not kept:
        raise DataError(f"{root}: none of the {len(photos)} labelled photos could be read (first: {skipped[0][1]})")
    return RealPhotoReport(
        spec.name,
        str(model_file),
        str(root),
        spec.labels,
        kept,
        np.asarray(predicted, dtype=np.int64),
        np.asarray(probability, dtype=np.float64),
        skipped,
        hands,
    )


def _through_hands(classifier: Classifier, files: list[Path], hand_models: Path, options: BackendOptions):
    """Per file: the classifier's Prediction of the hand found, None (no hand), or the InputError."""
    from runtime.hand_classify import HandClassifier
    from runtime.hands import HandFinder, HandModels
    from runtime.preprocess import load_image

    with HandFinder(HandModels.in_folder(hand_models), options) as finder:
        reader = HandClassifier(finder, classifier)
        for path in files:
            try:
                yield reader.classify(load_image(path), 1, str(path)).prediction
            except InputError as exc:
                yield exc


def confusion_figure(report: RealPhotoReport) -> Any:
    """Counts on a log colour scale (a single mistake is visible beside a diagonal of 60) with a colour bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from calibration.figures import cell_size, colour_bar, draw_confusion, log_norm

    matrix = report.confusion()
    size = cell_size(len(report.labels))
    fig, ax = plt.subplots(figsize=(size + 1.8, size), layout="constrained")
    image = draw_confusion(ax, matrix, report.labels, log_norm(int(matrix.max())), columns=report.columns)
    colour_bar(fig, image, ax, "photos (log scale)")
    ax.set_title(f"{report.model} on {Path(report.root).name}: {report.overall.text()}", fontsize=9)
    return fig


def plot_confusion(report: RealPhotoReport, path: Path) -> Path:
    return write_figure(confusion_figure(report), path)


def write_report(report: RealPhotoReport, out: Path | None = None) -> tuple[RealPhotoFiles, str | None]:
    """JSON, Markdown and the PNG through the one writer; the files and why the PNG was not drawn (or None)."""
    files = real_photo_files(report.model_file, out)
    write_artifact(files.json, json.dumps(report.to_dict(), indent=2) + "\n", Kind.REPORT)
    write_artifact(files.markdown, report.markdown(), Kind.TEXT)
    try:
        import matplotlib  # noqa: F401  (optional: a device has none)
    except ImportError:
        return files, "matplotlib is not installed (a device profile); `pip install matplotlib` draws the PNG"
    plot_confusion(report, files.png)
    return files, None


def run(model_file: Path, root: Path, out: Path | None = None) -> RealPhotoReport:
    """Evaluate and write the report (what the demo does); the report."""
    report = evaluate(model_file, root)
    write_report(report, out)
    return report


def read_line(model_file: Path) -> str | None:
    """The one-line summary of a real-photo report beside ``model_file``, or None when there is none."""
    path = real_photo_files(model_file).json
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        low, high = doc["ci"]
        line = (
            f"real photos ({path.name}): {doc['accuracy']:.1%} of {doc['images']} photos in {doc['root']} "
            f"(95 % CI {100 * low:.1f}–{100 * high:.1f} %)"
        )
        sources = ", ".join(f"{s['name']} {s['correct']}/{s['images']}" for s in doc["by_source"])
        if doc.get("hand_stage"):
            sources += f"; no hand in {doc['no_hand']} (counted wrong)"
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return f"{line}; per source: {sources}"


def lines_for(model_files: Iterable[Path]) -> list[str]:
    return [line for path in model_files if (line := read_line(path))]


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "evaluate",
        __doc__,
        [
            "edge evaluate --model artifacts/mnist_cnn/mnist_cnn.fp32.onnx ../shared/data/digits_real",
            "edge evaluate --model artifacts/asl_cnn/asl_cnn.int8.onnx ../shared/data/asl_real/test --json",
            "edge evaluate --model asl_cnn.fp16.plan my_photos/ --out reports/   # my_photos/<letter>/*.jpg",
            "edge evaluate --model asl_landmarks.fp32.onnx --hand-models artifacts/hands ../shared/data/asl_real",
        ],
    )
    parser.add_argument("--model", required=True, type=Path, help="model file (.onnx or .plan; its spec beside it)")
    parser.add_argument("folder", type=Path, help="folder of labelled photos (class sub-folders or <label>_… names)")
    parser.add_argument("--out", type=Path, default=None, help="write the report here (default: beside the model)")
    parser.add_argument("--batch-size", type=positive_int(), default=32, help="photos per inference call (default 32)")
    parser.add_argument("--providers", default=None, help="ONNX Runtime execution providers: cpu (default), cuda, …")
    parser.add_argument("--threads", type=positive_int(), default=None, help="intra-op threads (default: ORT's)")
    parser.add_argument("--json", action="store_true", help="print the JSON report on stdout instead of the table")
    parser.add_argument(
        "--hands",
        action="store_true",
        help="find the hand first and read its crop (an image model; always on for a landmark model); "
        "no hand found counts as wrong, reported apart",
    )
    parser.add_argument(
        "--hand-models", type=Path, default=None, help="folder of the hand stage's ONNX files (default: --model's)"
    )
    add_force_argument(parser)
    return parser


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_force(args.force)
    try:
        report = evaluate(
            args.model, args.folder, args.batch_size, args.providers, args.threads, args.hands, args.hand_models
        )
        files, no_png = write_report(report, args.out)
    except RuntimeToolkitError as exc:
        if args.json:
            print(dumps({"ok": False, "error": str(exc)}))
        print(f"error: {safe(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    if args.json:
        print(dumps({**report.to_dict(), "files": [str(files.json), str(files.markdown), str(files.png)]}))
    else:
        print(report.markdown(), end="")
        print(report.line())
        print(f"written: {files.json}, {files.markdown}" + (f"; no PNG: {no_png}" if no_png else f", {files.png}"))
    for _, why in report.skipped:
        print(f"skipped: {safe(why)}", file=sys.stderr)
    return EXIT_SOME_INPUTS_BAD if report.skipped else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
