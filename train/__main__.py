"""``python -m train <task> ...``: train a course model and save checkpoint, spec and metrics."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from formats.cli import EXIT_OK, EXIT_USER_ERROR, error_boundary
from formats.errors import RuntimeToolkitError
from formats.writer import set_force
from train import asl, asl_effnet, mnist, transfer
from train.loop import init_distributed_from_env, shutdown_distributed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train", description="Train the course models.")
    sub = parser.add_subparsers(dest="task", required=True)
    mnist.add_arguments(sub.add_parser("mnist", help="MNIST MLP or CNN (course lab 1)"))
    asl.add_arguments(sub.add_parser("asl", help="ASL sign-language CNN with augmentation (course labs 2-4)"))
    asl_effnet.add_arguments(
        sub.add_parser(
            "asl_effnet",
            help="ASL EfficientNet-Lite0 for real photos; --adapt DIR fine-tunes it on your own hands",
        )
    )
    transfer.add_arguments(sub.add_parser("transfer", help="pretrained backbone + new head, two phases (course lab 5)"))
    for task in sub.choices.values():
        task.add_argument("--force", action="store_true", help="replace files of another kind in --out")
    return parser


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_force(args.force)
    init_distributed_from_env()  # a no-op unless launched by torchrun
    try:
        {"mnist": mnist.run, "asl": asl.run, "asl_effnet": asl_effnet.run, "transfer": transfer.run}[args.task](args)
    except RuntimeToolkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        shutdown_distributed()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
