"""The labelled splits a model is calibrated on (training) and judged on (test), named by sample id.

Which data set a model uses comes from the model registry (``ModelEntry.dataset``); image-folder
models read ``<folder>/train`` and ``<folder>/val`` (``flowers`` under the data root by default).
Every sample carries an id that names where it came from (file and row, or file path), so a
calibration manifest can list exactly what was used and a test can prove no test sample leaked in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from formats.calibration_set import TRAIN
from runtime.spec import ModelSpec
from train.data.image_folder import load_image_folder
from train.data.mnist import load_mnist
from train.data.sign_mnist import find_split_file, load_sign_mnist
from train.errors import DataError
from train.models import get_model

TEST = "test"


@dataclass(frozen=True)
class LabelledSplit:
    dataset: str  # e.g. "mnist", "sign_mnist", "image_folder:flowers"
    split: str  # "train" or "test" (the held-out split; "val" for image folders)
    # Decoded uint8 images as the data set stores them: (N, H, W) or (N, H, W, C). The model's pixels come from
    # runtime.preprocess.prepare_pixels (the harness and the calibration set call it), as for any photo.
    images: np.ndarray
    labels: np.ndarray  # (N,) int64
    ids: tuple[str, ...]  # one id per sample, e.g. "train-images-idx3-ubyte#59999"

    def __post_init__(self) -> None:
        if not (len(self.images) == len(self.labels) == len(self.ids)):
            raise DataError(
                f"{self.dataset}/{self.split}: {len(self.images)} images, {len(self.labels)} labels, "
                f"{len(self.ids)} ids; they must match"
            )


def check_model_name(model: str, artifacts: Path) -> None:
    """Model names become file names in the artifact folder: refuse any that would leave it."""
    from formats.artifacts import Artifacts

    try:
        Artifacts(artifacts, model)
    except ValueError as exc:
        raise DataError(f"--model {model!r}: {exc}") from None


def dataset_of(spec: ModelSpec) -> str:
    """The registry's data set kind for the model named in the spec."""
    return get_model(spec.name).dataset


def load_split(spec: ModelSpec, data_dir: Path, split: str, folder: Path | None = None) -> LabelledSplit:
    """The ``train`` split (for calibration) or the ``test`` split (for the gate) of the spec's model."""
    if split not in (TRAIN, TEST):
        raise ValueError(f"split must be {TRAIN!r} or {TEST!r}, not {split!r}")
    data_dir = Path(data_dir)
    kind = dataset_of(spec)
    if kind == "mnist":
        data = load_mnist(data_dir, split)
        stem = "train-images-idx3-ubyte" if split == TRAIN else "t10k-images-idx3-ubyte"
        return LabelledSplit(
            "mnist", split, data.images, data.labels, tuple(f"{stem}#{i}" for i in range(len(data.labels)))
        )
    if kind == "sign_mnist":
        data = load_sign_mnist(data_dir, split)
        name = find_split_file(data_dir / "sign_mnist", split)[0].name
        return LabelledSplit(
            "sign_mnist", split, data.images, data.labels, tuple(f"{name}#row{i + 2}" for i in range(len(data.labels)))
        )  # row 1 is the header
    if kind == "image_folder":
        root = Path(folder) if folder is not None else data_dir / "flowers"
        sub = root / (TRAIN if split == TRAIN else "val")
        data = load_image_folder(sub, spec, classes=spec.labels)
        return LabelledSplit(
            f"image_folder:{root.name}",
            split if split == TRAIN else "val",
            data.images,
            data.labels,
            tuple(str(p.relative_to(root)) for p in data.files),
        )
    raise DataError(
        f"model {spec.name!r} (data set {kind!r}) has no labelled data to calibrate or judge on; "
        "calibrate a model trained on mnist, sign_mnist or an image folder"
    )
