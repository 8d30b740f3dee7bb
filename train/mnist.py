"""Train an MNIST model: ``python -m train mnist --model mnist_cnn --epochs 4 --out artifacts/mnist_cnn``.

A validation split is carved from the 60k training set; the 10k test set is read only once, for
the final evaluation. ``--kfold K`` first runs K-fold cross-validation over a small grid, reports
mean ± std per setting, then trains the best setting on the full training split.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from train.data.mnist import load_mnist
from train.data.paths import resolve_data_dir
from train.loop import TrainConfig
from train.options import add_common_arguments, config_and_grid
from train.workflow import train_and_save


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, "mnist", "mnist_cnn", epochs=4)


def run(args: argparse.Namespace) -> dict:
    config, grid = config_and_grid(args)
    return train_mnist(
        args.model,
        resolve_data_dir(args.data_dir),
        Path(args.out),
        config,
        kfold=args.kfold,
        grid=grid,
        limit=args.limit,
        progress=not args.no_progress,
    )


def train_mnist(
    model_name: str,
    data_dir: Path,
    out: Path,
    config: TrainConfig,
    kfold: int = 0,
    grid: list[TrainConfig] | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> dict:
    train = load_mnist(data_dir, "train")
    images, labels = train.images[:limit], train.labels[:limit]

    def load_test():
        test = load_mnist(data_dir, "test")
        return test.images, test.labels

    return train_and_save(
        model_name,
        images,
        labels,
        load_test,
        Path(out),
        config,
        kfold=kfold,
        grid=grid,
        progress=progress,
        info={"data_dir": str(data_dir)},
    )
