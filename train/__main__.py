"""``python -m train <task> ...``: train a course model and save checkpoint, spec and metrics."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from formats.cli import EXIT_OK, command_parser, error_boundary, examples
from formats.writer import set_force
from train import asl, asl_effnet, asl_landmarks, mnist, transfer
from train.loop import init_distributed_from_env, shutdown_distributed

MNIST_EXAMPLES = (
    "edge train mnist --model mnist_cnn --epochs 4 --out artifacts/mnist_cnn --data-dir data",
    "edge train mnist --model mnist_mlp --kfold 5 --grid-lr 1e-3,3e-4 --out artifacts/mlp",
)
ASL_EXAMPLES = (
    "edge train asl --epochs 12 --out artifacts/asl_cnn --data-dir data   # camera augmentation",
    "edge train asl --train-csv my_train.csv.gz --test-csv my_test.csv --out artifacts/my_asl",
)
ASL_EFFNET_EXAMPLES = (
    "edge train asl_effnet --out artifacts/asl_effnet --data-dir data   # ImageNet EfficientNet-Lite0, offline",
    "edge train asl_effnet --adapt my_hands/ --from artifacts/asl_effnet/asl_effnet.pt --out artifacts/mine",
)
ASL_LANDMARKS_EXAMPLES = (
    "edge train asl_landmarks --out artifacts/asl_landmarks --hands artifacts/hands --data-dir data   # zero-shot",
)
TRANSFER_EXAMPLES = (
    "edge train transfer --backbone efficientnet_lite0 --weights imagenet --data data/flowers --out artifacts/fl",
)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "train",
        __doc__,
        [*MNIST_EXAMPLES, *ASL_EXAMPLES, *ASL_EFFNET_EXAMPLES, *ASL_LANDMARKS_EXAMPLES, *TRANSFER_EXAMPLES],
        description="Train the course models.",
    )
    sub = parser.add_subparsers(
        dest="task", required=True, metavar="{mnist,asl,asl_effnet,asl_landmarks,transfer}", help="which model"
    )
    mnist.add_arguments(
        sub.add_parser("mnist", help="MNIST MLP or CNN (course lab 1)", epilog=examples(*MNIST_EXAMPLES))
    )
    asl.add_arguments(
        sub.add_parser(
            "asl", help="ASL sign-language CNN with augmentation (course labs 2-4)", epilog=examples(*ASL_EXAMPLES)
        )
    )
    asl_effnet.add_arguments(
        sub.add_parser(
            "asl_effnet",
            help="ASL EfficientNet-Lite0 for real photos; --adapt DIR fine-tunes it on your own hands",
            epilog=examples(*ASL_EFFNET_EXAMPLES),
        )
    )
    asl_landmarks.add_arguments(
        sub.add_parser(
            "asl_landmarks",
            help="ASL landmark classifier from Sign-MNIST alone (zero-shot; needs the hand models)",
            epilog=examples(*ASL_LANDMARKS_EXAMPLES),
        )
    )
    transfer.add_arguments(
        sub.add_parser(
            "transfer",
            help="pretrained backbone + new head, two phases (course lab 5)",
            epilog=examples(*TRANSFER_EXAMPLES),
        )
    )
    for task in sub.choices.values():
        task.add_argument("--force", action="store_true", help="replace files of another kind in --out")
    return parser


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_force(args.force)
    init_distributed_from_env()  # a no-op unless launched by torchrun
    try:
        runs = {"mnist": mnist.run, "asl": asl.run, "asl_effnet": asl_effnet.run, "transfer": transfer.run}
        runs["asl_landmarks"] = asl_landmarks.run
        runs[args.task](args)
    finally:
        shutdown_distributed()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
