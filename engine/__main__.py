"""``python -m engine``: build a TensorRT plan from an ONNX file, with manifest, golden I/O and the engine cache.

``python -m engine --onnx asl_cnn.int8.onnx [--out asl_cnn.int8.plan] [--min-batch 1 --opt-batch 8
--max-batch 64] [--workspace MiB] [--timing-cache FILE] [--dla-core N --gpu-fallback] [--version-compatible]
[--hardware-compatibility none|ampere+] [--calib-cache FILE] [--tf32] [--force] [--json]``

An existing plan is reused only when its manifest matches (source, TensorRT, GPU, precision, profile,
calibration, build flags); otherwise it is rebuilt and the reason printed. In a deploy bundle (a folder
with ``SHA256SUMS``, see ``python -m engine.bundle``) the files are verified against their checksums first.
Exit 0 built or reused, 2 the file cannot become an engine (the message says why and what to do).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from engine.options import HARDWARE_LEVELS, BuildOptions
from formats.bundle import verify_beside
from formats.cli import EXIT_OK, EXIT_USER_ERROR, command_parser, error_boundary
from formats.engine_manifest import Flavour
from formats.errors import RuntimeToolkitError
from formats.writer import Kind, check_output, declare_inputs, set_force


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(
        "build",
        __doc__,
        [
            "edge build --onnx artifacts/asl_cnn/asl_cnn.fp16.onnx              # → asl_cnn.fp16.plan + manifest",
            "edge build --onnx asl_cnn/asl_cnn.int8.onnx --max-batch 32 --json  # after `edge calibrate`",
            "edge build --onnx asl_cnn.prep.onnx --calib-cache asl_cnn.calib.cache   # TensorRT <= 10",
        ],
    )
    p.add_argument("--onnx", type=Path, required=True, help="the ONNX file (its precision is in the file)")
    p.add_argument("--out", type=Path, default=None, help="plan path (default: the ONNX name with .plan)")
    p.add_argument("--min-batch", type=int, default=1, help="smallest batch of the optimization profile")
    p.add_argument("--opt-batch", type=int, default=8, help="the batch TensorRT tunes for")
    p.add_argument("--max-batch", type=int, default=64, help="largest batch the plan accepts")
    p.add_argument("--workspace", type=int, default=None, metavar="MiB", help="builder workspace limit")
    p.add_argument("--timing-cache", type=Path, default=None, help="read and update this timing cache file")
    p.add_argument("--dla-core", type=int, default=None, help="build for this DLA core (Jetson AGX/NX; fp16/int8)")
    p.add_argument("--gpu-fallback", action="store_true", help="with --dla-core: layers DLA cannot run go to the GPU")
    p.add_argument("--version-compatible", action="store_true", help="engine loadable by later TensorRT versions")
    p.add_argument(
        "--hardware-compatibility",
        choices=HARDWARE_LEVELS,
        default="none",
        help="ampere+: one engine for every Ampere-or-newer GPU (not on Jetson)",
    )
    p.add_argument(
        "--calib-cache",
        type=Path,
        default=None,
        help="implicit INT8 from the FP32 file and this cache (TensorRT ≤ 10 only)",
    )
    p.add_argument(
        "--tf32",
        action="store_true",
        help="allow TF32 in an FP32 plan (faster on Ampere+, logits move by ~1e-2; off by default)",
    )
    p.add_argument(
        "--flavour",
        choices=[flavour.value for flavour in Flavour],
        default=None,
        help="which TensorRT to use (default: tensorrt if it imports, else tensorrt_rtx)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="rebuild even when the existing plan is current, replacing a file of another kind at --out",
    )
    p.add_argument("--json", action="store_true", help="print the manifest (or the error) as JSON on stdout")
    return p


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_force(args.force)
    declare_inputs(args.onnx, args.calib_cache)  # an output there is refused, even with --force

    def say(message: str) -> None:
        print(message, file=sys.stderr if args.json else sys.stdout, flush=True)

    try:
        options = BuildOptions(
            args.min_batch,
            args.opt_batch,
            args.max_batch,
            args.workspace,
            args.timing_cache,
            args.dla_core,
            args.gpu_fallback,
            args.version_compatible,
            args.hardware_compatibility,
            args.calib_cache,
            args.flavour,
            args.tf32,
        )
        if args.timing_cache is not None and not args.timing_cache.is_dir():  # checked even when the plan is reused
            check_output(args.timing_cache, Kind.TIMING_CACHE)
        verify_beside(args.onnx)  # a deploy bundle's files against SHA256SUMS (no-op outside a bundle)
        if args.force:
            from engine.build import build_engine
            from engine.golden import golden_from_calibration

            plan, manifest = build_engine(args.onnx, args.out, options, golden_from_calibration(args.onnx), say)
            status = "built (--force)"
        else:
            from engine.cache import ensure_engine

            plan, manifest, status = ensure_engine(args.onnx, args.out, options, say)
    except (RuntimeToolkitError, OSError) as exc:
        message = str(exc) if isinstance(exc, RuntimeToolkitError) else f"{exc.filename or args.onnx}: {exc.strerror}"
        print(f"error: {message}", file=sys.stderr)
        if args.json:
            print(json.dumps({"ok": False, "error": message}))
        return EXIT_USER_ERROR
    if args.json:
        print(json.dumps({"ok": True, "plan": str(plan), "status": status, "manifest": json.loads(manifest.to_json())}))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
