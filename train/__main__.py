"""``python -m train <task> ...``: train a course model and save checkpoint, spec and metrics."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from runtime.errors import RuntimeToolkitError
from train import mnist
from train.errors import TrainError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train", description="Train the course models.")
    sub = parser.add_subparsers(dest="task", required=True)
    mnist.add_arguments(sub.add_parser("mnist", help="MNIST MLP or CNN (course lab 1)"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        {"mnist": mnist.run}[args.task](args)
    except (TrainError, RuntimeToolkitError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
