"""The accuracy gate: every precision variant of a model, judged by its task metric on the real test split.

``python -m calibration.gate --model asl_cnn [--artifacts artifacts/asl_cnn] [--data-dir DIR]``

For each ``<name>.<precision>.onnx`` found (fp32, fp16, int8, int8.ort), run through the runtime
(ONNX Runtime on the CPU) on the held-out split: top-1 accuracy, top-1 agreement with FP32 PyTorch
(the checkpoint), max |Δlogit| against it, and the per-class accuracy change. Budgets: FP16 (and
the FP32 export) agree with PyTorch on ≥ 99.9 % of the images; INT8 loses at most 0.5 pp of
accuracy on MNIST and ASL and 1 pp on a transfer-learning model. Writes ``<name>.gate.json``,
``<name>.gate.md`` and ``<name>.confusion.png``; exits 1 naming each model and precision that
missed its budget, 2 when the inputs are missing or broken.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from calibration.data import TEST, LabelledSplit, check_model_name, dataset_of, load_split
from calibration.robustness import read_line
from calibration.run_check import check_one_run
from calibration.variants import Precision
from runtime.atomic import write_figure_atomic, write_text_atomic
from runtime.cli import describe, error_boundary
from runtime.errors import RuntimeToolkitError
from runtime.model import Classifier
from runtime.spec import ModelSpec
from train.data.paths import resolve_data_dir
from train.errors import DataError, TrainError

MIN_AGREEMENT = 0.999  # FP32 export and FP16 vs FP32 PyTorch
INT8_MAX_DROP_PP = {"mnist": 0.5, "sign_mnist": 0.5, "image_folder": 1.0}  # by data set kind


@dataclass(frozen=True)
class Budget:
    min_agreement: float | None = None
    max_drop_pp: float | None = None

    def describe(self) -> str:
        if self.max_drop_pp is not None:
            return f"accuracy drop ≤ {self.max_drop_pp:g} pp"
        return f"agreement ≥ {self.min_agreement:.1%}"


def budget_for(precision: Precision, dataset_kind: str) -> Budget:
    if precision in (Precision.INT8, Precision.INT8_ORT):
        return Budget(max_drop_pp=INT8_MAX_DROP_PP.get(dataset_kind, 1.0))
    return Budget(min_agreement=MIN_AGREEMENT)


@dataclass
class GateRow:
    model: str
    precision: str
    file: str
    images: int
    accuracy: float
    reference_accuracy: float  # FP32 PyTorch
    agreement: float
    max_abs_diff: float
    budget: Budget
    per_class: list[dict] = field(default_factory=list)  # label, reference, accuracy, change_pp

    @property
    def drop_pp(self) -> float:
        return 100.0 * (self.reference_accuracy - self.accuracy)

    @property
    def passed(self) -> bool:
        if self.budget.max_drop_pp is not None:
            return self.drop_pp <= self.budget.max_drop_pp + 1e-9
        return self.agreement >= self.budget.min_agreement

    def failure(self) -> str:
        got = (
            f"accuracy drop {self.drop_pp:.2f} pp"
            if self.budget.max_drop_pp is not None
            else f"agreement {self.agreement:.3%}"
        )
        return f"{self.model} {self.precision}: {got}, budget {self.budget.describe()}"

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(drop_pp=self.drop_pp, passed=self.passed, budget=self.budget.describe())
        return out


def per_class_change(
    labels: np.ndarray, reference: np.ndarray, predicted: np.ndarray, names: Sequence[str]
) -> list[dict]:
    rows = []
    for index, name in enumerate(names):
        mask = labels == index
        if not mask.any():
            continue
        ref, got = float((reference[mask] == index).mean()), float((predicted[mask] == index).mean())
        rows.append(
            {
                "label": name,
                "images": int(mask.sum()),
                "reference": ref,
                "accuracy": got,
                "change_pp": 100.0 * (got - ref),
            }
        )
    return rows


def confusion(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def variant_logits(path: Path, split: LabelledSplit, spec: ModelSpec, batch_size: int = 256) -> np.ndarray:
    """Logits through the runtime, from the same uint8 images the reference sees."""
    from runtime.preprocess import normalize

    with Classifier.from_path(path) as classifier:
        return classifier.run(normalize(split.images, spec), batch_size)


def reference_logits(checkpoint: Path, split: LabelledSplit) -> tuple[ModelSpec, np.ndarray]:
    from export.parity import torch_logits
    from train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    return ckpt.spec, torch_logits(ckpt.model, split.images, ckpt.spec)


def judge(
    model: str,
    precision: Precision,
    path: Path,
    split: LabelledSplit,
    spec: ModelSpec,
    reference: np.ndarray,
    logits: np.ndarray | None = None,
) -> tuple[GateRow, np.ndarray]:
    logits = variant_logits(path, split, spec) if logits is None else logits
    ref_top, top = reference.argmax(1), logits.argmax(1)
    row = GateRow(
        model=model,
        precision=precision.value,
        file=str(path),
        images=len(split.labels),
        accuracy=float((top == split.labels).mean()),
        reference_accuracy=float((ref_top == split.labels).mean()),
        agreement=float((top == ref_top).mean()),
        max_abs_diff=float(np.abs(logits - reference).max()),
        budget=budget_for(precision, dataset_of(spec).split(":")[0]),
        per_class=per_class_change(split.labels, ref_top, top, spec.labels),
    )
    return row, top


def markdown(rows: Sequence[GateRow]) -> str:
    lines = [
        "| model | precision | images | accuracy | Δ vs FP32 PyTorch | agreement | max abs Δlogit | worst class change"
        " | budget | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        worst = min(r.per_class, key=lambda c: c["change_pp"], default=None)
        worst_text = f"{worst['label']} {worst['change_pp']:+.2f} pp" if worst else ""
        lines.append(
            f"| {r.model} | {r.precision} | {r.images} | {r.accuracy:.4f} | {0.0 - r.drop_pp + 0.0:+.2f} pp "
            f"| {r.agreement:.4%} | {r.max_abs_diff:.2e} | {worst_text} | {r.budget.describe()} "
            f"| {'PASS' if r.passed else 'FAIL'} |"
        )
    return "\n".join(lines) + "\n"


def plot_confusions(path: Path, model: str, matrices: dict[str, np.ndarray], labels: Sequence[str]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = len(matrices)
    fig, axes = plt.subplots(1, count, figsize=(4.2 * count, 4.8), squeeze=False)
    peak = max(1, max(int((m - np.diag(np.diag(m))).max()) for m in matrices.values()))
    for ax, (name, matrix) in zip(axes[0], matrices.items()):
        errors = matrix - np.diag(np.diag(matrix))  # the diagonal would drown every mistake
        ax.imshow(errors, cmap="Reds", vmin=0, vmax=peak)
        ax.set_title(f"{name}: {int(errors.sum())} errors", fontsize=10)
        ticks = range(len(labels))
        ax.set_xticks(ticks, labels, fontsize=6, rotation=90)
        ax.set_yticks(ticks, labels, fontsize=6)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    fig.suptitle(f"{model}: test-split mistakes (true × predicted, diagonal left out; darkest = {peak})")
    fig.tight_layout()
    return write_figure_atomic(fig, path)


@dataclass
class GateResult:
    rows: list[GateRow]
    files: dict[str, str]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)


def run_gate(
    model: str,
    artifacts: Path,
    data_dir: Path,
    folder: Path | None = None,
    precisions: Sequence[Precision] = tuple(Precision),
    write: bool = True,
) -> GateResult:
    artifacts = Path(artifacts)
    check_model_name(model, artifacts)
    checkpoint = artifacts / f"{model}.pt"
    if not checkpoint.is_file():
        raise DataError(
            f"{checkpoint}: checkpoint not found; the gate compares against FP32 PyTorch. "
            f"Train first (`python -m train ...`) or pass --artifacts"
        )
    check_one_run(artifacts, model)  # variants from two calibration runs are refused, naming the stale file
    deployed = ModelSpec.load(artifacts / f"{model}.json")
    split = load_split(deployed, data_dir, TEST, folder)
    spec, reference = reference_logits(checkpoint, split)
    if deployed.labels != spec.labels:  # the deployed spec would print these labels: they must be the trained ones
        raise DataError(
            f"{artifacts / f'{model}.json'}: its labels differ from the checkpoint's ({checkpoint}); "
            "results would be mislabelled: re-export the model (`python -m export`)"
        )
    rows, matrices = [], {"fp32 pytorch": confusion(split.labels, reference.argmax(1), spec.num_classes)}
    for precision in precisions:
        path = precision.path(artifacts, model)
        if not path.is_file():
            continue
        row, top = judge(model, precision, path, split, spec, reference)
        rows.append(row)
        matrices[precision.value] = confusion(split.labels, top, spec.num_classes)
    if not rows:
        raise DataError(
            f"{artifacts}: no {model}.<precision>.onnx files to judge; run `python -m export` "
            f"and `python -m calibration --model {model}` first"
        )
    files = {}
    if write:
        report = {
            "model": model,
            "test_split": f"{split.dataset}/{split.split}",
            "images": len(split.labels),
            "rows": [r.to_dict() for r in rows],
            "passed": all(r.passed for r in rows),
        }
        # Camera-like re-shots (calibration.robustness), where a report lies beside a judged file.
        robust = [line for p in precisions if (line := read_line(p.path(artifacts, model)))]
        report["robustness"] = robust
        files["json"] = str(write_text_atomic(artifacts / f"{model}.gate.json", json.dumps(report, indent=2) + "\n"))
        text = markdown(rows) + "".join(f"\n{line}\n" for line in robust)
        files["markdown"] = str(write_text_atomic(artifacts / f"{model}.gate.md", text))
        files["png"] = str(plot_confusions(artifacts / f"{model}.confusion.png", model, matrices, spec.labels))
    return GateResult(rows, files)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m calibration.gate", description=describe(__doc__))
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
    parser.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    return parser


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    artifacts = args.artifacts or Path("artifacts") / args.model
    try:
        result = run_gate(args.model, artifacts, resolve_data_dir(args.data_dir), args.folder)
    except (DataError, TrainError, RuntimeToolkitError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(Path(result.files["json"]).read_text(), end="")
    else:
        print(markdown(result.rows), end="")
        print(f"written: {', '.join(result.files.values())}")
    for row in result.rows:
        if not row.passed:
            print(f"FAIL {row.failure()}", file=sys.stderr)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
