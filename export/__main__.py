"""Write the FP32 ONNX and its spec.

``python -m export --checkpoint artifacts/mnist_cnn/mnist_cnn.pt [--out DIR]`` for a trained model;
``python -m export --pretrained efficientnet_lite0_imagenet [--out DIR]`` for a pretrained ImageNet one.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from export.onnx_export import DEFAULT_OPSET, export_fp32
from formats.artifacts import Artifacts
from formats.cli import EXIT_OK, EXIT_USER_ERROR, command_parser, error_boundary
from formats.errors import RuntimeToolkitError
from formats.writer import set_force
from train.checkpoint import load_checkpoint
from train.models import MODELS, get_model


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "export",
        None,
        [
            "edge export --checkpoint artifacts/asl_cnn/asl_cnn.pt     # → asl_cnn.fp32.onnx + asl_cnn.json beside it",
            "edge export --checkpoint artifacts/mnist_cnn/mnist_cnn.pt --uint8-input   # pixels in, scaling in-graph",
            "edge export --pretrained efficientnet_lite0_imagenet --out artifacts/imagenet   # for the doggy door",
        ],
        description="Export a trained checkpoint to ONNX.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="a .pt file written by `edge train`")
    source.add_argument(
        "--pretrained",
        choices=sorted(n for n, e in MODELS.items() if e.dataset == "imagenet"),
        help="export a pretrained ImageNet classifier as is (e.g. for the doggy door)",
    )
    parser.add_argument("--weights", default="imagenet", help="with --pretrained: imagenet or a .pth path")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: the checkpoint's folder, or ./artifacts/<model>)",
    )
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument(
        "--uint8-input",
        action="store_true",
        help="fold scale/mean/std into the graph: <name>_u8.fp32.onnx takes uint8 pixels (4x fewer bytes to the GPU)",
    )
    parser.add_argument("--force", action="store_true", help="replace output files of another kind")
    return parser


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_force(args.force)
    try:
        if args.checkpoint:
            ckpt = load_checkpoint(args.checkpoint)
            model, spec, out = ckpt.model, ckpt.spec, args.out or args.checkpoint.parent
        else:
            entry = get_model(args.pretrained)
            spec = entry.spec()
            model, out = entry.build(spec, args.weights), args.out or Path("artifacts") / args.pretrained
        path = export_fp32(model, spec, out, args.opset, uint8_input=args.uint8_input)
    except RuntimeToolkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(f"wrote {path} and {Artifacts.of(path).spec}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
