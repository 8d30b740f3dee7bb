"""Make the hand stage's two ONNX models from MediaPipe's wheel: ``edge hands --out artifacts``.

The mediapipe 0.10.14 wheel ships ``palm_detection_full.tflite`` and ``hand_landmark_full.tflite`` (every
platform's wheel holds the same files). This command takes them from a wheel you give (``--wheel``), or one it
downloads with pip into ``--download-dir`` (x86-64 cp311 wheel, no dependencies installed: mediapipe itself is
never imported), converts both with ``export.tflite_onnx`` and writes ``hand_palm.fp32.onnx`` and
``hand_landmark.fp32.onnx`` into ``--out``, where ``edge infer --hands`` and ``edge capture`` look for them.

"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

from formats.artifacts import CONVERTED_FROM_KEY
from formats.cli import EXIT_OK, EXIT_USER_ERROR, command_parser, dumps, error_boundary
from formats.errors import RuntimeToolkitError
from formats.files import open_regular
from formats.writer import Kind, add_force_argument, artifact_path, set_force
from runtime.hands import LANDMARK_MODEL, PALM_MODEL, HandModels

MEDIAPIPE = "mediapipe==0.10.14"
# member of the wheel → the model it becomes
MEMBERS = {
    PALM_MODEL: "mediapipe/modules/palm_detection/palm_detection_full.tflite",
    LANDMARK_MODEL: "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
}
DEFAULT_DOWNLOADS = Path.home() / ".cache" / "edge-toolkit" / "wheels"


class HandsError(RuntimeToolkitError):
    """The wheel cannot be found, downloaded or read."""


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "hands",
        __doc__,
        [
            "edge hands --out artifacts",
            "edge hands --out artifacts --wheel mediapipe-0.10.14-cp310-cp310-manylinux_2_17_aarch64.whl",
        ],
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for hand_palm.fp32.onnx, hand_landmark.fp32.onnx"
    )
    parser.add_argument("--wheel", type=Path, help=f"a {MEDIAPIPE} wheel file (default: download one with pip)")
    parser.add_argument(
        "--download-dir",
        type=Path,
        default=DEFAULT_DOWNLOADS,
        help=f"where pip puts the wheel (default {DEFAULT_DOWNLOADS})",
    )
    parser.add_argument("--json", action="store_true", help="print the written files as JSON")
    add_force_argument(parser)
    return parser


def find_wheel(download_dir: Path) -> Path:
    """A mediapipe 0.10.14 wheel in ``download_dir``, downloaded there with pip when none is."""
    found = sorted(download_dir.glob("mediapipe-0.10.14-*.whl"))
    if found:
        return found[0]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    command += [
        "--platform",
        "manylinux2014_x86_64",
        "--python-version",
        "3.11",
        "--dest",
        str(download_dir),
        MEDIAPIPE,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    found = sorted(download_dir.glob("mediapipe-0.10.14-*.whl"))
    if result.returncode != 0 or not found:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise HandsError(
            f"could not download {MEDIAPIPE} into {download_dir} ({tail[0]}); download the wheel by hand "
            f"(`pip download --no-deps {MEDIAPIPE}`) and pass it with --wheel"
        )
    return found[0]


def read_tflite(wheel: Path, member: str) -> bytes:
    try:
        with open_regular(wheel, f"a {MEDIAPIPE} wheel", HandsError) as fh, zipfile.ZipFile(fh) as archive:
            return archive.read(member)
    except FileNotFoundError:
        raise HandsError(f"{wheel}: wheel not found; pass an existing {MEDIAPIPE} wheel with --wheel") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise HandsError(f"{wheel}: not a readable wheel ({exc}); download {MEDIAPIPE} again") from None
    except KeyError:
        raise HandsError(f"{wheel}: has no {member}; use a {MEDIAPIPE} wheel (other versions may move it)") from None


def convert_hand_models(wheel: Path, out: Path) -> HandModels:
    """Both models of the wheel → ONNX in ``out`` (written through the one writer)."""
    import onnx

    from export.tflite_onnx import convert_tflite

    models = HandModels.in_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, target in ((PALM_MODEL, models.palm), (LANDMARK_MODEL, models.landmark)):
        proto = convert_tflite(read_tflite(wheel, MEMBERS[name]))
        proto.doc_string = f"{MEMBERS[name]} from {wheel.name}, converted by export.tflite_onnx"
        # our mark (formats.writer): a second run may replace these files without --force
        onnx.helper.set_model_props(proto, {CONVERTED_FROM_KEY: f"{MEDIAPIPE}:{MEMBERS[name]}"})
        with artifact_path(target, Kind.ONNX) as tmp:
            onnx.save(proto, tmp)
    return models


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_force(args.force)
    try:
        wheel = args.wheel if args.wheel is not None else find_wheel(args.download_dir)
        models = convert_hand_models(wheel, args.out)
    except RuntimeToolkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    if args.json:
        print(dumps({"wheel": str(wheel), "palm": str(models.palm), "landmark": str(models.landmark)}))
    else:
        print(f"wrote {models.palm} and {models.landmark} (from {wheel.name})")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
