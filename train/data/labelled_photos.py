"""A folder of labelled photos, decoded through the runtime's preprocessing for one model's spec.

Two layouts, the ones ``edge capture`` writes and the ones people keep by hand: ``DIR/<label>/<file>`` (the label is
the sub-folder) or ``DIR/<label>_<anything>.<ext>`` (the label is the file name up to its first ``_``). Every label
must be one of the spec's; every problem is reported with its file name, all at once, and nothing is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from formats.errors import InputError
from runtime.preprocess import find_images, image_to_pixels, load_image
from runtime.spec import ModelSpec
from train.errors import DataError

MAX_REPORTED = 10


@dataclass(frozen=True)
class LabelledPhotos:
    images: np.ndarray  # (N, H, W) or (N, H, W, 3) uint8, exactly what the runtime feeds the model
    labels: np.ndarray  # (N,) int64 indices into the spec's labels
    files: tuple[Path, ...]


def label_of(path: Path, root: Path) -> str:
    """The sub-folder under ``root`` if there is one, else the file name before its first ``_``."""
    relative = path.relative_to(root)
    return relative.parts[0] if len(relative.parts) > 1 else path.stem.split("_", 1)[0]


def load_labelled_photos(root: Path, spec: ModelSpec) -> LabelledPhotos:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; expected labelled photos as DIR/<label>/<file> or DIR/<label>_*.jpg")
    files = find_images(root)
    if not files:
        raise DataError(f"{root}: no image files; expected DIR/<label>/<file> or DIR/<label>_<n>.jpg")
    images, labels, errors = [], [], []
    for path in files:
        label = label_of(path, root)
        if label not in spec.labels:
            errors.append(f"{path}: label {label!r} is not one of the model's ({''.join(spec.labels)})")
            continue
        try:
            images.append(image_to_pixels(load_image(path), spec))
        except InputError as exc:
            errors.append(str(exc))
            continue
        labels.append(spec.labels.index(label))
    if errors:
        shown = "\n  ".join(errors[:MAX_REPORTED])
        more = f"\n  ... and {len(errors) - MAX_REPORTED} more" if len(errors) > MAX_REPORTED else ""
        raise DataError(f"{root}: {len(errors)} photo(s) cannot be used; fix or remove them:\n  {shown}{more}")
    return LabelledPhotos(np.stack(images), np.array(labels, np.int64), tuple(files))
