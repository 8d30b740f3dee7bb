"""Synthetic paper-like renderings of MNIST digits: dark ink on paper, photographed (for choosing designs).

``python -m calibration.paper --out DIR [--count 500] [--seed 0]`` writes ``<label>_paper_<n>.jpg`` files from MNIST
*validation* digits (the ones training holds out), each drawn as a phone photo of handwriting would look: a stroke
width change, the digit at a random size and place on a larger sheet, paper of a random tone (white, grey, beige)
with ink of a random dark colour (black, blue, pencil grey), a lighting gradient and sometimes a soft shadow, grid
lines on some sheets, blur, sensor noise and JPEG. ``edge evaluate`` scores a model on the folder like on real photos.

``--pen-width PX`` draws every digit with a pen of that many pixels of the sheet instead (its skeleton, stroked
round): a fine pen on a large digit (2) is far thinner than MNIST's stroke once framed, a marker (a width near a
tenth of the digit's size or more) far thicker. Without it the stroke scales with the digit, as in MNIST.

Design choices for the digit deploy path are made on these and on MNIST validation, never on ``digits_real`` (a
scoreboard). The seed fixes every draw: the same seed writes the same bytes.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from formats.atomic import write_bytes_atomic
from formats.cli import EXIT_OK, command_parser, error_boundary, positive_float, positive_int, random_seed
from train.data.mnist import load_mnist
from train.data.paths import resolve_data_dir
from train.loop import TrainConfig, split_train_val


def validation_digits(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST training images that ``train_and_save`` holds out for validation (its seed and fraction)."""
    train = load_mnist(data_dir, "train")
    config = TrainConfig()
    _, val = split_train_val(len(train.labels), config.val_fraction, config.seed)
    return train.images[val], train.labels[val]


def skeleton(mask: np.ndarray) -> np.ndarray:
    """The one-pixel-wide centre lines of a binary image (H, W) bool: Zhang–Suen thinning, vectorised."""
    sk = np.pad(mask.astype(np.uint8), 1)
    while True:
        changed = False
        for step in (0, 1):
            p = [np.roll(np.roll(sk, -dy, 0), -dx, 1) for dy, dx in _RING]  # P2..P9, clockwise from north
            count = sum(p)
            transitions = sum(((p[i] == 0) & (p[(i + 1) % 8] == 1)).astype(np.uint8) for i in range(8))
            if step == 0:
                gone = (p[0] * p[2] * p[4] == 0) & (p[2] * p[4] * p[6] == 0)
            else:
                gone = (p[0] * p[2] * p[6] == 0) & (p[0] * p[4] * p[6] == 0)
            remove = (sk == 1) & (count >= 2) & (count <= 6) & (transitions == 1) & gone
            if remove.any():
                sk[remove] = 0
                changed = True
        if not changed:
            return sk[1:-1, 1:-1].astype(bool)


_RING = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))


def pen_ink(digit: np.ndarray, side: int, pen_width: float) -> Image.Image:
    """An MNIST digit redrawn at ``side`` pixels with a round pen ``pen_width`` pixels wide (antialiased)."""
    big = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BILINEAR))
    ys, xs = np.nonzero(skeleton(big > 127))
    rows, cols = np.mgrid[0:side, 0:side].astype(np.float32)
    distance = np.full((side, side), np.inf, np.float32)
    for i in range(0, len(ys), 256):  # the distance to the nearest centre-line pixel, a block of them at a time
        d = (rows[..., None] - ys[i : i + 256]) ** 2 + (cols[..., None] - xs[i : i + 256]) ** 2
        distance = np.minimum(distance, np.sqrt(d.min(axis=-1)))
    alpha = np.clip(pen_width / 2 + 0.5 - distance, 0, 1)
    return Image.fromarray(np.rint(alpha * 255).astype(np.uint8))


def render_paper(digit: np.ndarray, rng: np.random.Generator, pen_width: float | None = None) -> bytes:
    """One MNIST digit (28×28, light on dark) → JPEG bytes of a photo of it written on paper; with ``pen_width``,
    drawn with a pen that many pixels wide whatever the digit's size."""
    ink = Image.fromarray(digit)
    stroke = rng.integers(-1, 2)  # thinner, as written, thicker
    if stroke and pen_width is None:
        ink = ink.filter(ImageFilter.MaxFilter(3) if stroke > 0 else ImageFilter.MinFilter(3))
    side = int(rng.integers(40, 160))
    ink = ink.resize((side, side), Image.Resampling.BILINEAR) if pen_width is None else pen_ink(digit, side, pen_width)
    ink = ink.rotate(float(rng.uniform(-8, 8)), Image.BILINEAR)
    alpha = np.asarray(ink, dtype=np.float32) / 255.0
    sheet_h, sheet_w = (int(side * rng.uniform(1.0, 2.5)) for _ in range(2))
    y, x = int(rng.integers(0, sheet_h - side + 1)), int(rng.integers(0, sheet_w - side + 1))
    cover = np.zeros((sheet_h, sheet_w), np.float32)
    cover[y : y + side, x : x + side] = alpha
    paper = np.asarray([rng.uniform(150, 245)] * 3) * np.asarray([1.0, rng.uniform(0.93, 1.0), rng.uniform(0.8, 1.0)])
    pen = rng.choice([[20, 20, 25], [30, 40, 120], [90, 90, 95], [60, 30, 90]]) + rng.uniform(-10, 10, 3)
    sheet = np.broadcast_to(paper, (sheet_h, sheet_w, 3)).copy()
    if rng.random() < 0.3:  # squared paper
        step, shade = int(rng.integers(8, 25)), rng.uniform(15, 45)
        sheet[::step] -= shade
        sheet[:, ::step] -= shade
    sheet = sheet * (1 - cover[..., None]) + pen * cover[..., None]
    rows, cols = np.mgrid[0:sheet_h, 0:sheet_w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * cols / sheet_w + np.sin(angle) * rows / sheet_h + 1) / 2
    light = 1.0 - rng.uniform(0.0, 0.4) * ramp
    if rng.random() < 0.4:  # a soft shadow over part of the sheet
        edge = rng.uniform(0.2, 0.8) * sheet_w
        light *= 1.0 - rng.uniform(0.2, 0.45) / (1 + np.exp(-(cols - edge) / (0.05 * sheet_w)))
    sheet = sheet * light[..., None] + rng.normal(0, rng.uniform(0, 8), sheet.shape)
    image = Image.fromarray(np.clip(sheet, 0, 255).astype(np.uint8), "RGB")
    image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 1.5))))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=int(rng.integers(60, 95)))
    return out.getvalue()


def write_set(data_dir: Path, out: Path, count: int, seed: int = 0, pen_width: float | None = None) -> list[Path]:
    images, labels = validation_digits(data_dir)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.permutation(len(labels))[:count])
    out.mkdir(parents=True, exist_ok=True)
    return [
        write_bytes_atomic(out / f"{labels[i]}_paper_{i}.jpg", render_paper(images[i], rng, pen_width)) for i in picked
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "paper",
        __doc__,
        [
            "edge paper --out /tmp/paper",
            "edge paper --out /tmp/paper --count 2000 --seed 1",
            "edge paper --out /tmp/fine_pen --pen-width 2     # a fine pen: strokes far thinner than MNIST's",
            "edge evaluate --model artifacts/mnist_cnn/mnist_cnn.fp32.onnx /tmp/paper   # score a model on them",
        ],
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the renderings")
    parser.add_argument("--data-dir", default=None, help="data root ($EDGE_DATA_DIR or ./data when not given)")
    parser.add_argument("--count", type=positive_int(), default=500, help="how many digits")
    parser.add_argument("--seed", type=random_seed(), default=0, help="the renderer's seed")
    parser.add_argument(
        "--pen-width",
        type=positive_float(1000.0),
        default=None,
        help="draw with a pen this many pixels wide whatever the digit's size (default: MNIST's stroke, scaled)",
    )
    return parser


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    files = write_set(resolve_data_dir(args.data_dir), args.out, args.count, args.seed, args.pen_width)
    print(f"wrote {len(files)} paper renderings of MNIST validation digits to {args.out}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
