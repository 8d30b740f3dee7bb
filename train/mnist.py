"""Train an MNIST model: ``python -m train mnist --model mnist_cnn --epochs 3 --out artifacts/mnist_cnn``.

A validation split is carved from the 60k training set; the 10k test set is read only once, for
the final evaluation. ``--kfold K`` first runs K-fold cross-validation over a small grid, reports
mean ± std per setting, then trains the best setting on the full training split.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from runtime.atomic import write_text_atomic
from runtime.preprocess import normalize
from runtime.spec import ModelSpec
from train.checkpoint import save_checkpoint
from train.data.mnist import load_mnist
from train.data.paths import DATA_DIR_ENV, resolve_data_dir
from train.errors import TrainError
from train.loop import TrainConfig, evaluate, fit, seed_everything, split_train_val
from train.models import MODELS, get_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", choices=sorted(m for m, e in MODELS.items() if e.dataset == "mnist"),
                        default="mnist_cnn")
    parser.add_argument("--data-dir", default=None, help=f"data root holding mnist/ (default ${DATA_DIR_ENV} or ./data)")
    parser.add_argument("--out", type=Path, required=True, help="output folder for checkpoint, spec and metrics")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of the training set held out")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images (quick runs)")
    parser.add_argument("--kfold", type=int, default=0, metavar="K", help="K-fold CV over the grid first (K ≥ 2)")
    parser.add_argument("--grid-lr", default="1e-3,3e-4", help="learning rates tried by --kfold")
    parser.add_argument("--grid-batch-size", default="128", help="batch sizes tried by --kfold")
    parser.add_argument("--no-progress", action="store_true")


def to_tensors(images: np.ndarray, labels: np.ndarray, spec: ModelSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 digits → model inputs through the runtime's own preprocessing."""
    return torch.from_numpy(normalize(images, spec)), torch.from_numpy(labels.astype(np.int64))


def kfold_indices(n: int, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    folds = np.array_split(np.random.default_rng(seed).permutation(n), k)
    return [(np.sort(np.concatenate(folds[:i] + folds[i + 1 :])), np.sort(folds[i])) for i in range(k)]


def cross_validate(model_name: str, x: torch.Tensor, y: torch.Tensor, base: TrainConfig, k: int,
                   grid: list[TrainConfig], progress: bool) -> list[dict]:
    """Mean ± std validation accuracy of each grid setting over K folds."""
    results = []
    for config in grid:
        scores = []
        for fold, (tr, va) in enumerate(kfold_indices(len(x), k, base.seed)):
            seed_everything(config.seed)
            model = get_model(model_name).build()
            fit(model, (x[tr], y[tr]), (x[va], y[va]), config, progress=progress,
                desc=f"lr={config.lr:g} bs={config.batch_size} fold {fold + 1}/{k}")
            scores.append(evaluate(model, x[va], y[va])[1])
        mean, std = statistics.fmean(scores), statistics.pstdev(scores)
        print(f"kfold lr={config.lr:g} batch={config.batch_size}: val acc {mean:.4f} ± {std:.4f} over {k} folds")
        results.append({"lr": config.lr, "batch_size": config.batch_size, "fold_accuracies": scores,
                        "mean": mean, "std": std})
    return results


def run(args: argparse.Namespace) -> dict:
    config = TrainConfig(args.epochs, args.lr, args.batch_size, args.seed, args.val_fraction)
    grid = None
    if args.kfold:
        if args.kfold < 2:
            raise TrainError("--kfold needs K >= 2")
        grid = [replace(config, lr=lr, batch_size=bs) for lr, bs in itertools.product(
            [float(v) for v in args.grid_lr.split(",")], [int(v) for v in args.grid_batch_size.split(",")])]
    return train_mnist(args.model, resolve_data_dir(args.data_dir), Path(args.out), config,
                       kfold=args.kfold, grid=grid, limit=args.limit, progress=not args.no_progress)


def train_mnist(model_name: str, data_dir: Path, out: Path, config: TrainConfig, kfold: int = 0,
                grid: list[TrainConfig] | None = None, limit: int | None = None, progress: bool = True) -> dict:
    """Train, evaluate once on the test split, and write <out>/<model>.pt, .json and .metrics.json."""
    entry = get_model(model_name)
    spec = entry.spec()
    train_split = load_mnist(data_dir, "train")
    images, labels = train_split.images, train_split.labels
    if limit:
        images, labels = images[:limit], labels[:limit]
    x, y = to_tensors(images, labels, spec)
    report: dict = {"model": model_name, "data_dir": str(data_dir), "train_images": len(x)}

    if kfold:
        cv = cross_validate(model_name, x, y, config, kfold, grid or [config], progress)
        best = max(cv, key=lambda r: r["mean"])
        config = replace(config, lr=best["lr"], batch_size=best["batch_size"])
        print(f"kfold chose lr={config.lr:g} batch={config.batch_size}; training on the full training split")
        report["kfold"] = {"k": kfold, "results": cv, "chosen": {"lr": config.lr, "batch_size": config.batch_size}}
        train_idx, val_idx = np.arange(len(x)), np.arange(0)
    else:
        train_idx, val_idx = split_train_val(len(x), config.val_fraction, config.seed)

    seed_everything(config.seed)
    model = entry.build()
    history = fit(model, (x[train_idx], y[train_idx]), (x[val_idx], y[val_idx]), config, progress=progress,
                  desc=model_name)
    # The test split is read here, once, for the final evaluation only.
    test = load_mnist(data_dir, "test")
    test_loss, test_acc = evaluate(model, *to_tensors(test.images, test.labels, spec))
    report.update({
        "config": config.to_dict(),
        "history": [vars(h) for h in history],
        "test": {"loss": test_loss, "accuracy": test_acc, "images": len(test.labels)},
    })
    save_checkpoint(out / f"{model_name}.pt", model_name, model, spec, report)
    spec.save(out / f"{model_name}.json")
    write_text_atomic(out / f"{model_name}.metrics.json", json.dumps(report, indent=2) + "\n")
    print(f"{model_name}: test accuracy {test_acc:.4f} on {len(test.labels)} images; wrote {out}")
    return report
