"""Record labelled hand photos for ``edge train asl --adapt DIR``: from a camera, a video file or image folders.

Like jetson-inference's camera-capture tool: every frame that shows a hand is cropped around it (the square crop
the classifiers read, ``runtime.hands``) and written as ``OUT/<label>/<source>_<n>.jpg``; frames without a hand
are counted and skipped. The label comes from ``--label`` (one per run: a clip, a camera session), from the
sub-folder names of an image folder (``photos/a/*.jpg`` → a), or, with ``--keys`` on a terminal, from the letter
key you press while the camera runs (the next frame with a hand is saved under that letter; Enter alone repeats
the last letter; ``q`` stops).

"""

from __future__ import annotations

import argparse
import io
import re
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from formats.cli import (
    EXIT_OK,
    EXIT_SOME_INPUTS_BAD,
    EXIT_USER_ERROR,
    command_parser,
    dumps,
    error_boundary,
    positive_int,
)
from formats.errors import InputError, RuntimeToolkitError
from formats.writer import Kind, add_force_argument, set_force, write_artifact
from runtime.hands import CROP_MARGIN, HandFinder, HandModels
from runtime.preprocess import IMAGE_SUFFIXES, find_images, load_image

_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
JPEG_QUALITY = 90


@dataclass
class CaptureReport:
    saved: Counter = field(default_factory=Counter)  # label → photos written
    no_hand: int = 0
    errors: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"saved": dict(self.saved), "no_hand": self.no_hand, "errors": self.errors, "files": self.files}


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "capture",
        __doc__,
        [
            "edge capture --out my_hands --label a /dev/video0 --max-frames 20 --every 5",
            "edge capture --out my_hands --label b clip_of_b.mp4 --every 10",
            "edge capture --out my_hands photos/   # photos/a/*.jpg, photos/b/*.jpg, ...",
            "edge capture --out my_hands --keys /dev/video0",
            "edge train asl --adapt my_hands --out artifacts   # then fit on them",
        ],
    )
    parser.add_argument("sources", nargs="+", help="image files or folders, a video file, or a camera (/dev/video0)")
    parser.add_argument("--out", type=Path, required=True, help="data folder: photos go to OUT/<label>/")
    parser.add_argument("--label", default=None, help="the label of every photo of this run (e.g. a letter)")
    parser.add_argument("--keys", action="store_true", help="label frames by pressing letter keys on this terminal")
    parser.add_argument("--hand-models", type=Path, default=Path("artifacts"), help="hand models (default artifacts)")
    parser.add_argument("--margin", type=float, default=CROP_MARGIN, help=f"crop side / hand extent ({CROP_MARGIN})")
    parser.add_argument("--every", type=positive_int(), default=1, help="video: look at every Nth frame (default 1)")
    parser.add_argument("--max-frames", type=positive_int(), default=None, help="video: save at most N photos")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_force_argument(parser)
    return parser


def check_label(label: str) -> str:
    if not _LABEL.fullmatch(label):
        raise InputError(f"label {label!r}: use letters, digits, '_' or '-' (it becomes a folder name), e.g. --label a")
    return label.lower()


def image_items(source: Path, label: str | None) -> Iterator[tuple[str, str, Path]]:
    """(label, name stem, file) for an image file or folder; a folder's sub-folder names label its photos."""
    for path in find_images(source):
        if label is not None:
            yield label, path.stem, path
            continue
        parts = path.relative_to(source).parts if source.is_dir() else ()
        if len(parts) < 2:
            raise InputError(
                f"{path}: no label; give --label, or put photos in sub-folders named by label ({source}/a/*.jpg)"
            )
        yield check_label(parts[0]), path.stem, path


def video_frames(text: str, every: int, stop: threading.Event) -> Iterator[tuple[str, Image.Image]]:
    from runtime.stream.sources import ReadOptions, open_reader
    from runtime.stream.uri import parse_source

    spec = parse_source(text)
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", Path(spec.uri).stem or "camera")[:40]
    for frame in open_reader(spec, ReadOptions()).frames(stop):
        if frame.index % every == 0:
            yield f"{stem}_f{frame.index:06d}", frame.image


class Recorder:
    """Crop the hand of each photo and write it under its label (through the one writer)."""

    def __init__(self, finder: HandFinder, out: Path, margin: float) -> None:
        self.finder, self.out, self.margin = finder, out, margin
        self.report = CaptureReport()

    def record(self, label: str, stem: str, image: Image.Image) -> bool:
        image = image.convert("RGB")
        hand = self.finder.find(image)
        if hand is None:
            self.report.no_hand += 1
            return False
        buffer = io.BytesIO()
        hand.crop(image, self.margin).save(buffer, format="JPEG", quality=JPEG_QUALITY)
        folder = self.out / label
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{stem}.jpg"
        write_artifact(target, buffer.getvalue(), Kind.IMAGE, folder)
        self.report.saved[label] += 1
        self.report.files.append(str(target))
        return True


def run_sources(args, recorder: Recorder) -> None:
    label = check_label(args.label) if args.label is not None else None
    for text in args.sources:
        path = Path(text)
        if path.is_dir() and not find_images(path):  # a run that captured nothing must not end in success
            recorder.report.errors.append(f"{path}: folder holds no image files; give photos (PNG, JPEG, …)")
            continue
        if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
            for item_label, stem, file in image_items(path, label):
                try:
                    recorder.record(item_label, stem, load_image(file))
                except InputError as exc:
                    recorder.report.errors.append(str(exc))
            continue
        if args.keys:
            run_keys(text, args, recorder)
            continue
        if label is None:
            raise InputError(f"{text}: a video or camera needs --label (or --keys on a terminal)")
        saved, stop = 0, threading.Event()
        for stem, image in video_frames(text, args.every, stop):
            saved += recorder.record(label, stem, image)
            if args.max_frames and saved >= args.max_frames:
                stop.set()
                break


def run_keys(text: str, args, recorder: Recorder) -> None:
    """A letter key arms that label; the next frame with a hand is saved under it. ``q`` stops."""
    if not sys.stdin.isatty():
        raise InputError("--keys reads letter keys from a terminal; without one use --label")
    wanted: list[str] = []
    stop = threading.Event()

    def read_keys() -> None:
        last = None
        for line in sys.stdin:
            key = line.strip().lower() or last
            if key == "q":
                stop.set()
                return
            if key:
                wanted.append(check_label(key))
                last = key
                print(f"saving the next hand as {key!r}", file=sys.stderr)

    print("type a letter and Enter to save the next hand under it (Enter repeats, q quits)", file=sys.stderr)
    threading.Thread(target=read_keys, daemon=True).start()
    for stem, image in video_frames(text, args.every, stop):
        if wanted and recorder.record(wanted[0], stem, image):
            wanted.pop(0)


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_force(args.force)
    if args.label is not None and args.keys:
        build_parser().error("--label and --keys exclude each other: one labels the whole run, the other each frame")
    try:
        with HandFinder(HandModels.in_folder(args.hand_models)) as finder:
            recorder = Recorder(finder, args.out, args.margin)
            run_sources(args, recorder)
    except RuntimeToolkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    report = recorder.report
    if args.json:
        print(dumps(report.to_dict()))
    else:
        saved = ", ".join(f"{k} {v}" for k, v in sorted(report.saved.items())) or "none"
        print(f"saved {sum(report.saved.values())} photo(s) in {args.out} ({saved}); no hand in {report.no_hand}")
        for error in report.errors:
            print(f"  {error}", file=sys.stderr)
    return EXIT_SOME_INPUTS_BAD if report.errors else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
