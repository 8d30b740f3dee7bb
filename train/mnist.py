"""Train an MNIST model: ``python -m train mnist --model mnist_cnn --epochs 4 --out artifacts/mnist_cnn``.

A validation split is carved from the 60k training set; the 10k test set is read only once, for
the final evaluation. ``--kfold K`` first runs K-fold cross-validation over a small grid, reports
mean ± std per setting, then trains the best setting on the full training split.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import replace
from pathlib import Path

from train.data.mnist import load_mnist
from train.data.paths import DATA_DIR_ENV, resolve_data_dir
from train.errors import TrainError
from train.loop import LrSchedule, TrainConfig
from train.models import MODELS
from train.workflow import train_and_save


def add_common_arguments(parser: argparse.ArgumentParser, dataset: str, default_model: str, epochs: int,
                         batch_size: int = 128) -> None:
    """Options every in-memory classifier command shares (MNIST, ASL)."""
    parser.add_argument("--model", choices=sorted(m for m, e in MODELS.items() if e.dataset == dataset),
                        default=default_model)
    parser.add_argument("--data-dir", default=None, help=f"data root (default ${DATA_DIR_ENV} or ./data)")
    parser.add_argument("--out", type=Path, required=True, help="output folder for checkpoint, spec and metrics")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--schedule", choices=[s.value for s in LrSchedule], default=LrSchedule.COSINE.value,
                        help="learning-rate schedule over the run (default cosine decay to 0)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of the training set held out")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images (quick runs)")
    parser.add_argument("--kfold", type=int, default=0, metavar="K", help="K-fold CV over the grid first (K >= 2)")
    parser.add_argument("--grid-lr", default="1e-3,3e-4", help="learning rates tried by --kfold")
    parser.add_argument("--grid-batch-size", default="128", help="batch sizes tried by --kfold")
    parser.add_argument("--no-progress", action="store_true")


def config_and_grid(args: argparse.Namespace) -> tuple[TrainConfig, list[TrainConfig] | None]:
    config = TrainConfig(args.epochs, args.lr, args.batch_size, args.seed, args.val_fraction, LrSchedule(args.schedule))
    if not args.kfold:
        return config, None
    if args.kfold < 2:
        raise TrainError("--kfold needs K >= 2")
    try:
        lrs = [float(v) for v in args.grid_lr.split(",")]
        sizes = [int(v) for v in args.grid_batch_size.split(",")]
    except ValueError:
        raise TrainError("--grid-lr takes numbers and --grid-batch-size integers, comma-separated") from None
    return config, [replace(config, lr=lr, batch_size=bs) for lr, bs in itertools.product(lrs, sizes)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, "mnist", "mnist_cnn", epochs=4)


def run(args: argparse.Namespace) -> dict:
    config, grid = config_and_grid(args)
    return train_mnist(args.model, resolve_data_dir(args.data_dir), Path(args.out), config,
                       kfold=args.kfold, grid=grid, limit=args.limit, progress=not args.no_progress)


def train_mnist(model_name: str, data_dir: Path, out: Path, config: TrainConfig, kfold: int = 0,
                grid: list[TrainConfig] | None = None, limit: int | None = None, progress: bool = True) -> dict:
    train = load_mnist(data_dir, "train")
    images, labels = train.images[:limit], train.labels[:limit]

    def load_test():
        test = load_mnist(data_dir, "test")
        return test.images, test.labels

    return train_and_save(model_name, images, labels, load_test, Path(out), config, kfold=kfold, grid=grid,
                          progress=progress, info={"data_dir": str(data_dir)})
