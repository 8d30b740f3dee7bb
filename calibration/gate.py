"""The accuracy gate: every precision variant of a model, judged by its task metric on the real test split.

``python -m calibration.gate --model asl_cnn [--artifacts artifacts/asl_cnn] [--data-dir DIR]``

For each ``<name>.<precision>.onnx`` found (fp32, fp16, int8, int8.ort), run through the runtime
(ONNX Runtime on the CPU) on the held-out split: top-1 accuracy, top-1 agreement with FP32 PyTorch
(the checkpoint), max |Δlogit| against it, and the per-class accuracy change. Budgets: FP16 (and
the FP32 export) agree with PyTorch on ≥ 99.9 % of the images; INT8 loses at most 0.5 pp of
accuracy on MNIST and ASL and 1 pp on a transfer-learning model. Writes ``<name>.gate.json``,
``<name>.gate.md`` and ``<name>.confusion.png``; exits 1 naming each model and precision that
missed its budget, 2 when the inputs are missing or broken.

Every accuracy carries a 95 % Wilson interval and every variant is compared with FP32 PyTorch on the same
images (exact McNemar test, interval for the paired difference: ``calibration.statistics``). A verdict is
"within budget", "beyond budget" (a real miss: exit 1) or "inconclusive" when the split is too small to
tell, with about how many images would decide. Inconclusive passes, with a note on stderr, unless
``--strict``, which demands that every budget is shown to hold.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from calibration import real_photos
from calibration.calibrate import model_artifacts
from calibration.robustness import read_line
from calibration.run_check import check_one_run
from calibration.statistics import MIN_AGREEMENT, Judgement, PairedTable, Verdict, judge_agreement, judge_drop
from calibration.variants import Precision
from formats.artifacts import ONNX_PRECISIONS, Artifacts
from formats.cli import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USER_ERROR, command_parser, error_boundary
from formats.errors import RuntimeToolkitError
from formats.holdout import HoldoutInfo, HoldoutSample, draw, save_holdout
from formats.writer import Kind, write_artifact, write_figure
from harness.compare import (
    Batch,
    ClassChange,
    Comparison,
    RunResult,
    compare_results,
    file_runner,
    run_backends,
    torch_runner,
)
from runtime.spec import ModelSpec
from train.cards import TEST, LabelledSplit, card_of, load_split
from train.data.paths import resolve_data_dir
from train.errors import DataError


@dataclass(frozen=True)
class Budget:
    min_agreement: float | None = None
    max_drop_pp: float | None = None

    def describe(self) -> str:
        if self.max_drop_pp is not None:
            return f"accuracy drop ≤ {self.max_drop_pp:g} pp"
        return f"agreement ≥ {self.min_agreement:.1%}"


def budget_for(precision: Precision, int8_max_drop_pp: float) -> Budget:
    """INT8 variants lose at most the card's points of accuracy; the others agree with FP32 PyTorch."""
    if precision in (Precision.INT8, Precision.INT8_ORT):
        return Budget(max_drop_pp=int8_max_drop_pp)
    return Budget(min_agreement=MIN_AGREEMENT)


@dataclass
class GateRow:
    model: str
    precision: Precision
    file: str
    comparison: Comparison  # FP32 PyTorch (the reference) vs this variant, from the harness, with labels
    budget: Budget
    paired: PairedTable  # per-image right/wrong of FP32 PyTorch and this variant: McNemar's b and c

    @property
    def images(self) -> int:
        return self.comparison.images

    @property
    def accuracy(self) -> float:
        return self.comparison.accuracy

    @property
    def reference_accuracy(self) -> float:  # FP32 PyTorch
        return self.comparison.reference_accuracy

    @property
    def agreement(self) -> float:
        return self.comparison.agreement

    @property
    def max_abs_diff(self) -> float:
        return self.comparison.max_abs_diff

    @property
    def per_class(self) -> tuple[ClassChange, ...]:
        return self.comparison.per_class

    @property
    def drop_pp(self) -> float:
        return 100.0 * (self.reference_accuracy - self.accuracy)

    @property
    def agreeing(self) -> int:
        return round(self.agreement * self.images)

    @cached_property
    def stats(self) -> Judgement:
        """Intervals, the paired test against FP32 PyTorch, and the verdict on the budget."""
        if self.budget.max_drop_pp is not None:
            return judge_drop(self.paired, self.agreeing, self.budget.max_drop_pp / 100)
        return judge_agreement(self.paired, self.agreeing, self.budget.min_agreement)

    @property
    def verdict(self) -> Verdict:
        return self.stats.verdict

    @property
    def passed(self) -> bool:
        """Fails only on a real miss; an inconclusive split passes (``passes(strict=True)`` fails it)."""
        return self.verdict is not Verdict.BEYOND

    def passes(self, strict: bool = False) -> bool:
        return self.verdict is Verdict.WITHIN if strict else self.passed

    def failure(self) -> str:
        s = self.stats
        got = (
            f"accuracy drop {self.drop_pp:.2f} pp (95 % CI of the change {s.difference_ci.points()}, "
            f"b={self.paired.reference_only}, c={self.paired.variant_only}, McNemar p={s.mcnemar_p:.2g})"
            if self.budget.max_drop_pp is not None
            else f"agreement {self.agreement:.3%} (95 % CI {s.agreement_ci.percent()} %)"
        )
        return f"{self.model} {self.precision}: {got}, budget {self.budget.describe()}: {s.describe()}"

    def to_dict(self) -> dict:
        out = {  # the gate report's row, keys as before the row held a Comparison
            "model": self.model,
            "precision": self.precision.value,
            "file": self.file,
            "images": self.images,
            "accuracy": self.accuracy,
            "reference_accuracy": self.reference_accuracy,
            "agreement": self.agreement,
            "max_abs_diff": self.max_abs_diff,
            "budget": None,  # described below, in this place
            "paired": asdict(self.paired),
            "per_class": [asdict(change) for change in self.per_class],
        }
        out.update(
            drop_pp=self.drop_pp,
            passed=self.passed,
            passed_strict=self.passes(strict=True),
            budget=self.budget.describe(),
            **self.stats.to_dict(),
        )
        return out


def confusion(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def variant_result(path: Path, split: LabelledSplit) -> RunResult:
    """The variant through the runtime as deployed (its own spec, its session settings), from the same uint8
    images the reference sees."""
    runner = file_runner(path)
    return run_backends([runner], [Batch(split.images, split.labels)])[runner.name]


def check_reference_model(ckpt, checkpoint: Path, model: str) -> None:
    """Refuse a checkpoint of another model (``mnist_cnn.pt`` copied as ``mnist_mlp.pt``): bogus verdicts."""
    if ckpt.spec.name != model:
        raise DataError(
            f"{checkpoint}: a checkpoint of model {ckpt.spec.name!r} ({ckpt.model_name}), not {model!r}; the gate "
            f"needs {model}'s own FP32 reference: copy back the checkpoint `python -m train` wrote for {model}"
        )


def reference_result(checkpoint: Path, split: LabelledSplit, model: str | None = None) -> tuple[ModelSpec, RunResult]:
    """FP32 PyTorch (the checkpoint) on the split, through the same harness. With ``model``, a checkpoint of
    another model (``mnist_cnn.pt`` copied as ``mnist_mlp.pt``) is refused: its verdicts would be bogus."""
    from train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    if model is not None:
        check_reference_model(ckpt, checkpoint, model)
    runner = torch_runner(ckpt.model, ckpt.spec, "fp32 pytorch")
    return ckpt.spec, run_backends([runner], [Batch(split.images, split.labels)])[runner.name]


def judge(
    model: str,
    precision: Precision,
    path: Path,
    split: LabelledSplit,
    spec: ModelSpec,
    reference: RunResult,
    result: RunResult | None = None,
) -> tuple[GateRow, np.ndarray]:
    result = variant_result(path, split) if result is None else result
    comparison = compare_results(reference, result, spec.labels)
    row = GateRow(
        model=model,
        precision=precision,
        file=str(path),
        comparison=comparison,
        budget=budget_for(precision, card_of(spec).int8_max_drop_pp),
        paired=PairedTable.from_predictions(split.labels, reference.top1, result.top1),
    )
    return row, result.top1


def verdict_cell(row: GateRow, strict: bool = False) -> str:
    """PASS/FAIL by the exit-code rule, then what the statistics say ("pass" in lower case: not shown to hold)."""
    if row.verdict is Verdict.INCONCLUSIVE:
        return f"{'FAIL' if strict else 'pass'}: {row.stats.describe()}"
    return f"{'PASS' if row.passed else 'FAIL'}: {row.verdict.value}"


def markdown(rows: Sequence[GateRow], strict: bool = False) -> str:
    lines = [
        "| model | precision | images | accuracy (95 % CI) | Δ vs FP32 PyTorch (95 % CI) | b / c (McNemar p) "
        "| agreement | max abs Δlogit | worst class change | budget | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        worst = min(r.per_class, key=lambda c: c.change_pp, default=None)
        worst_text = f"{worst.label} {worst.change_pp:+.2f} pp" if worst else ""
        lines.append(
            f"| {r.model} | {r.precision} | {r.images} | {r.accuracy:.4f} ({r.stats.accuracy_ci.percent()} %) "
            f"| {0.0 - r.drop_pp + 0.0:+.2f} pp ({r.stats.difference_ci.points()}) "
            f"| {r.paired.reference_only} / {r.paired.variant_only} ({r.stats.mcnemar_p:.2g}) "
            f"| {r.agreement:.4%} | {r.max_abs_diff:.2e} | {worst_text} | {r.budget.describe()} "
            f"| {verdict_cell(r, strict)} |"
        )
    return "\n".join(lines) + "\n"


def verdict_lines(rows: Sequence[GateRow], strict: bool = False) -> list[str]:
    """What a CLI prints on stderr: each failing row, and each inconclusive one that passed only for want of data."""
    lines = []
    for row in rows:
        if not row.passes(strict):
            lines.append(f"FAIL {row.failure()}")
        elif row.verdict is Verdict.INCONCLUSIVE:
            lines.append(f"NOTE {row.failure()} (counts as a pass; --strict fails it)")
    return lines


def confusion_figure(model: str, matrices: dict[str, np.ndarray], labels: Sequence[str]) -> Any:
    """One panel of mistakes per precision (true × predicted, the diagonal left out so the panels compare errors),
    counts in the cells on one log colour scale shared by every panel (one mistake shows), and its colour bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from calibration.figures import cell_size, colour_bar, draw_confusion, log_norm

    errors = {name: m - np.diag(np.diag(m)) for name, m in matrices.items()}
    columns = min(2, len(errors))
    rows = -(-len(errors) // columns)
    side = cell_size(len(labels))
    fig, axes = plt.subplots(
        rows, columns, figsize=(side * columns + 1.2, side * rows + 0.6), squeeze=False, layout="constrained"
    )
    norm = log_norm(max(int(e.max()) for e in errors.values()))
    image = None
    for ax, (name, error) in zip(axes.flat, errors.items()):
        image = draw_confusion(ax, error, labels, norm)
        ax.set_title(f"{name}: {int(error.sum())} mistakes", fontsize=10)
    for ax in list(axes.flat)[len(errors) :]:
        ax.set_visible(False)
    colour_bar(fig, image, axes, "mistakes (log scale)")
    fig.suptitle(f"{model}: test-split mistakes (true × predicted, diagonal left out)")
    return fig


def plot_confusions(path: Path, model: str, matrices: dict[str, np.ndarray], labels: Sequence[str]) -> Path:
    return write_figure(confusion_figure(model, matrices, labels), path)


@dataclass
class GateResult:
    rows: list[GateRow]
    files: dict[str, str]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    def passes(self, strict: bool = False) -> bool:
        return all(r.passes(strict) for r in self.rows)


def check_calibrated(names: Artifacts, precisions: Sequence[Precision]) -> None:
    """Refuse a folder where calibration has not run: the FP32 export alone would "pass" a gate of one row."""
    variants = [p for p in precisions if p is not Precision.FP32]
    if variants and not any(names.onnx(p).is_file() for p in variants):
        raise DataError(
            f"{names.folder}: nothing to gate: no {' / '.join(str(p) for p in variants)} variant of {names.model} "
            f"here (only the FP32 export, if any); run `edge calibrate --model {names.model} --artifacts "
            f"{names.folder}` first (it writes the variants and gates them)"
        )


def run_gate(
    model: str,
    artifacts: Path,
    data_dir: Path,
    folder: Path | None = None,
    precisions: Sequence[Precision] = ONNX_PRECISIONS,
    write: bool = True,
    strict: bool = False,
) -> GateResult:
    names = model_artifacts(model, Path(artifacts))
    checkpoint = names.checkpoint
    if not checkpoint.is_file():
        raise DataError(
            f"{checkpoint}: checkpoint not found; the gate compares against FP32 PyTorch. "
            f"Train first (`python -m train ...`) or pass --artifacts"
        )
    from train.checkpoint import load_checkpoint

    # the wrong model's checkpoint is the deeper fault: named before "nothing to gate" or a stale run
    check_reference_model(load_checkpoint(checkpoint), checkpoint, model)
    check_calibrated(names, precisions)
    check_one_run(names)  # variants from two calibration runs are refused, naming the stale file
    deployed = ModelSpec.load(names.spec)
    split = load_split(deployed, data_dir, TEST, folder)
    spec, reference = reference_result(checkpoint, split, model)
    if deployed.labels != spec.labels:  # the deployed spec would print these labels: they must be the trained ones
        raise DataError(
            f"{names.spec}: its labels differ from the checkpoint's ({checkpoint}); "
            "results would be mislabelled: re-export the model (`python -m export`)"
        )
    rows, matrices = [], {"fp32 pytorch": confusion(split.labels, reference.top1, spec.num_classes)}
    for precision in precisions:
        path = names.onnx(precision)
        if not path.is_file():
            continue
        row, top = judge(model, precision, path, split, spec, reference)
        rows.append(row)
        matrices[precision.value] = confusion(split.labels, top, spec.num_classes)
    if not rows:
        raise DataError(
            f"{names.folder}: no {model}.<precision>.onnx files to judge; run `python -m export` "
            f"and `python -m calibration --model {model}` first"
        )
    files = {}
    if write:
        report = {
            "model": model,
            "test_split": f"{split.dataset}/{split.split}",
            "images": len(split.labels),
            "rows": [r.to_dict() for r in rows],
            "strict": strict,
            "passed": all(r.passes(strict) for r in rows),
        }
        # Camera-like re-shots (calibration.robustness), where a report lies beside a judged file.
        robust = [line for p in precisions if (line := read_line(names.onnx(p)))]
        report["robustness"] = robust
        # Labelled real photos (calibration.real_photos, `edge evaluate`), where a report lies beside a judged file.
        real = real_photos.lines_for(names.onnx(p) for p in precisions)
        report["real_photos"] = real
        text = json.dumps(report, indent=2) + "\n"
        files["json"] = str(write_artifact(names.gate_json, text, Kind.REPORT, names.folder))
        text = markdown(rows, strict) + "".join(f"\n{line}\n" for line in robust + real)
        files["markdown"] = str(write_artifact(names.gate_md, text, Kind.TEXT, names.folder))
        files["png"] = str(plot_confusions(names.confusion_png, model, matrices, spec.labels))
        files["holdout"] = str(save_holdout(names.folder, model, holdout_sample(split, card_of(spec).int8_max_drop_pp)))
    return GateResult(rows, files)


def holdout_sample(split: LabelledSplit, int8_max_drop_pp: float, seed: int = 0) -> HoldoutSample:
    """A seeded few hundred of the held-out images the gate judged, with the card's budgets: the bundle carries
    it, so ``edge bench all`` scores accuracy on a device without the data set."""
    pick = draw(split.images, split.labels, seed=seed)
    info = HoldoutInfo(f"{split.dataset}/{split.split}", len(split.labels), seed, int8_max_drop_pp / 100, MIN_AGREEMENT)
    return HoldoutSample(split.images[pick], split.labels[pick].astype(np.int64), info)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "gate",
        __doc__,
        [
            "edge calibrate --model asl_cnn --data-dir data          # writes the variants (and gates them)",
            "edge gate --model asl_cnn --data-dir data               # every variant on the real test split",
            "edge gate --model mnist_cnn --artifacts art/mnist_cnn --data-dir data --strict --json",
        ],
    )
    parser.add_argument("--model", required=True, help="model name, e.g. mnist_cnn, asl_cnn")
    parser.add_argument(
        "--artifacts", type=Path, default=None, help="folder with the model's files (default artifacts/<model>)"
    )
    parser.add_argument("--data-dir", default=None, help="data root (default $EDGE_DATA_DIR or ./data)")
    parser.add_argument(
        "--folder",
        type=Path,
        default=None,
        help="image-folder data set root for transfer models (default <data-dir>/flowers)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail an inconclusive verdict too: every budget must be shown to hold on this split",
    )
    parser.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    return parser


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    artifacts = args.artifacts or Path("artifacts") / args.model
    try:
        result = run_gate(args.model, artifacts, resolve_data_dir(args.data_dir), args.folder, strict=args.strict)
    except (RuntimeToolkitError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    if args.json:
        print(Path(result.files["json"]).read_text(), end="")
    else:
        print(markdown(result.rows, args.strict), end="")
        print(f"written: {', '.join(result.files.values())}")
    for line in verdict_lines(result.rows, args.strict):
        print(line, file=sys.stderr)
    return EXIT_OK if result.passes(args.strict) else EXIT_CHECK_FAILED


if __name__ == "__main__":
    sys.exit(main())
