"""ImageFolder data (``root/<class>/*.jpg``) decoded once into memory through the runtime's preprocessing.

Training images are kept on a square canvas of ``spec.resize_size`` pixels (shorter side resized,
centre-cropped) so that augmentation can crop from more than the model sees; evaluation images
are exactly what the runtime feeds the model (``runtime.preprocess.image_to_pixels``).
Unreadable files are reported by name, all at once; nothing is silently skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from formats.errors import InputError
from runtime.preprocess import IMAGE_SUFFIXES, image_to_pixels, load_image
from runtime.spec import ModelSpec
from train.errors import DataError


@dataclass(frozen=True)
class ImageFolderSplit:
    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N,) int64
    classes: tuple[str, ...]
    files: tuple[Path, ...]


def list_image_folder(root: Path) -> tuple[tuple[str, ...], list[tuple[Path, int]]]:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; expected ImageFolder layout root/<class>/<image files>")
    classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if len(classes) < 2:
        found = f"only one class folder ({classes[0]})" if classes else "no class folders"
        raise DataError(
            f"{root}: {found}; a classifier needs at least 2 classes: root/<class>/<image files>, one folder each"
        )
    items = []
    for index, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{root / name}: class folder holds no image files")
        items.extend((f, index) for f in files)
    return classes, items


def training_canvas_spec(spec: ModelSpec) -> ModelSpec:
    """The spec's resize and crop, but to a square of ``resize_size`` (room for random crops)."""
    side = spec.resize_size or max(spec.height, spec.width)
    return replace(spec, height=side, width=side)


def load_image_folder(
    root: Path, spec: ModelSpec, for_training: bool = False, classes: tuple[str, ...] | None = None
) -> ImageFolderSplit:
    """Decode every image under ``root``; ``classes`` (e.g. from the training split) must match."""
    found, items = list_image_folder(root)
    if classes is not None and found != tuple(classes):
        raise DataError(f"{root}: classes {list(found)} differ from the training classes {list(classes)}")
    target = training_canvas_spec(spec) if for_training else spec
    images, errors = [], []
    for path, _ in items:
        try:
            images.append(image_to_pixels(load_image(path), target))
        except InputError as exc:
            errors.append(str(exc))
    if errors:
        raise DataError(
            f"{root}: {len(errors)} unreadable image(s); fix or remove them:\n  " + "\n  ".join(errors[:10])
        )
    return ImageFolderSplit(
        np.stack(images), np.array([label for _, label in items], np.int64), found, tuple(path for path, _ in items)
    )
