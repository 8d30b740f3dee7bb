"""Command-line options shared by the in-memory classifier commands (``train mnist``, ``train asl``)."""

from __future__ import annotations

import argparse
import itertools
from dataclasses import replace
from pathlib import Path

from train.data.paths import DATA_DIR_ENV
from train.errors import TrainError
from train.loop import LrSchedule, TrainConfig
from train.models import MODELS


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
