"""``python -m export --checkpoint artifacts/mnist_cnn/mnist_cnn.pt [--out DIR]``: write the FP32 ONNX and spec."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from export.onnx_export import DEFAULT_OPSET, ExportError, export_fp32
from runtime.errors import RuntimeToolkitError
from train.checkpoint import load_checkpoint
from train.errors import TrainError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m export", description="Export a trained checkpoint to ONNX.")
    parser.add_argument("--checkpoint", type=Path, required=True, help="a .pt file written by `python -m train`")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the checkpoint's folder)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        ckpt = load_checkpoint(args.checkpoint)
        path = export_fp32(ckpt.model, ckpt.spec, args.out or args.checkpoint.parent, args.opset)
    except (TrainError, ExportError, RuntimeToolkitError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path} and {path.with_name(ckpt.spec.name + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
