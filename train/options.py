"""Command-line options shared by the in-memory classifier commands (``train mnist``, ``train asl``)."""

from __future__ import annotations

import argparse
import itertools
import math
from dataclasses import replace
from pathlib import Path

from formats.cli import non_negative_int, positive_float, positive_int, random_seed
from train.data.paths import DATA_DIR_ENV
from train.errors import TrainError
from train.loop import LrSchedule, TrainConfig
from train.models import MODELS


def add_common_arguments(
    parser: argparse.ArgumentParser,
    dataset: str,
    default_model: str,
    epochs: int,
    batch_size: int = 128,
    models: tuple[str, ...] | None = None,
) -> None:
    """Options every in-memory classifier command shares (MNIST, ASL). ``models`` None: all of the data set's."""
    choices = models or tuple(m for m, e in MODELS.items() if e.dataset == dataset)
    parser.add_argument("--model", choices=sorted(choices), default=default_model, help="which architecture")
    parser.add_argument("--data-dir", default=None, help=f"data root (default ${DATA_DIR_ENV} or ./data)")
    parser.add_argument("--out", type=Path, required=True, help="output folder for checkpoint, spec and metrics")
    # Bounded types: --epochs 0 would overwrite a trained checkpoint with an untrained one.
    parser.add_argument("--epochs", type=positive_int(100_000), default=epochs, help="passes over the training split")
    parser.add_argument("--lr", type=positive_float(10.0), default=1e-3, help="peak learning rate")
    parser.add_argument("--batch-size", type=positive_int(1_000_000), default=batch_size, help="images per step")
    parser.add_argument(
        "--seed", type=random_seed(), default=0, help="seeds the split, the initial weights and the shuffling"
    )
    parser.add_argument(
        "--schedule",
        choices=[s.value for s in LrSchedule],
        default=LrSchedule.COSINE.value,
        help="learning-rate schedule over the run (default cosine decay to 0)",
    )
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of the training set held out")
    parser.add_argument(
        "--limit", type=positive_int(), default=None, help="use only the first N training images (quick runs)"
    )
    parser.add_argument(
        "--kfold", type=non_negative_int(1000), default=0, metavar="K", help="K-fold CV over the grid first (K >= 2)"
    )
    parser.add_argument("--grid-lr", default=None, help="learning rates tried by --kfold (default 1e-3,3e-4)")
    parser.add_argument("--grid-batch-size", default=None, help="batch sizes tried by --kfold (default 128)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar, only the per-epoch lines")


def config_and_grid(args: argparse.Namespace) -> tuple[TrainConfig, list[TrainConfig] | None]:
    config = TrainConfig(args.epochs, args.lr, args.batch_size, args.seed, args.val_fraction, LrSchedule(args.schedule))
    if not args.kfold:
        if args.grid_lr is not None or args.grid_batch_size is not None:
            raise TrainError(
                "--grid-lr and --grid-batch-size are only used by a --kfold search; add --kfold K (K >= 2) or drop them"
            )
        return config, None
    if args.kfold < 2:
        raise TrainError("--kfold needs K >= 2")
    try:
        lrs = [float(v) for v in (args.grid_lr or "1e-3,3e-4").split(",")]
        sizes = [int(v) for v in (args.grid_batch_size or "128").split(",")]
    except ValueError:
        raise TrainError("--grid-lr takes numbers and --grid-batch-size integers, comma-separated") from None
    if not all(math.isfinite(v) and v > 0 for v in lrs) or min(sizes) < 1:
        raise TrainError("--grid-lr takes positive numbers and --grid-batch-size positive integers")
    return config, [replace(config, lr=lr, batch_size=bs) for lr, bs in itertools.product(lrs, sizes)]
