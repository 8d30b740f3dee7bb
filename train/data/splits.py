"""The labelled splits a model is trained, calibrated and judged on, named by sample id: the one implementation.

A model card (``train.cards``) names its data set kind (``DatasetKind``) and its split loader; the loaders of
the course data sets are here. ``train`` is the training split (calibration samples come from it); ``test`` is
the held-out split (the gate judges on it; an image folder's is its ``val/`` folder). Every sample carries an id
that names where it came from (file and row, or file path), so a calibration manifest can list exactly what was
used and a test can prove no test sample leaked in.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from formats.calibration_set import TRAIN
from runtime.spec import ModelSpec
from train.data.image_folder import load_image_folder
from train.data.mnist import load_mnist
from train.data.sign_mnist import find_split_file, load_sign_mnist
from train.errors import DataError

TEST = "test"


class DatasetKind(enum.Enum):
    """What kind of data a model learns from; the value is what manifests and reports write."""

    MNIST = "mnist"
    SIGN_MNIST = "sign_mnist"
    IMAGE_FOLDER = "image_folder"  # <folder>/train/<class>/*.jpg and <folder>/val/<class>/*.jpg
    IMAGENET = "imagenet"  # a pretrained ImageNet classifier: no labelled data here
    ASL_PHOTOS = "asl_photos"  # a user's own labelled hand photos (`edge capture`, `train asl --adapt DIR`)


@dataclass(frozen=True)
class LabelledSplit:
    kind: DatasetKind
    split: str  # "train" or "test" (the held-out split; "val" for image folders)
    # Decoded uint8 images as the data set stores them: (N, H, W) or (N, H, W, C). The model's pixels come from
    # runtime.preprocess.prepare_pixels (the harness and the calibration set call it), as for any photo.
    images: np.ndarray
    labels: np.ndarray  # (N,) int64
    ids: tuple[str, ...]  # one id per sample, e.g. "train-images-idx3-ubyte#59999"
    source: str | None = None  # the image folder's name, for kinds read from a folder

    def __post_init__(self) -> None:
        if not (len(self.images) == len(self.labels) == len(self.ids)):
            raise DataError(
                f"{self.dataset}/{self.split}: {len(self.images)} images, {len(self.labels)} labels, "
                f"{len(self.ids)} ids; they must match"
            )

    @property
    def dataset(self) -> str:
        """The name manifests and reports write, e.g. ``mnist`` or ``image_folder:flowers``."""
        return self.kind.value if self.source is None else f"{self.kind.value}:{self.source}"


def check_split(split: str) -> None:
    if split not in (TRAIN, TEST):
        raise ValueError(f"split must be {TRAIN!r} or {TEST!r}, not {split!r}")


def mnist_split(spec: ModelSpec, data_dir: Path, split: str, folder: Path | None = None) -> LabelledSplit:
    """``<data_dir>/mnist``: the 60k training or 10k test digits."""
    data = load_mnist(data_dir, split)
    stem = "train-images-idx3-ubyte" if split == TRAIN else "t10k-images-idx3-ubyte"
    ids = tuple(f"{stem}#{i}" for i in range(len(data.labels)))
    return LabelledSplit(DatasetKind.MNIST, split, data.images, data.labels, ids)


def sign_mnist_split(spec: ModelSpec, data_dir: Path, split: str, folder: Path | None = None) -> LabelledSplit:
    """``<data_dir>/sign_mnist``: the Kaggle CSVs (ids name the CSV row; row 1 is the header)."""
    data = load_sign_mnist(data_dir, split)
    name = find_split_file(Path(data_dir) / "sign_mnist", split)[0].name
    ids = tuple(f"{name}#row{i + 2}" for i in range(len(data.labels)))
    return LabelledSplit(DatasetKind.SIGN_MNIST, split, data.images, data.labels, ids)


def image_folder_split(spec: ModelSpec, data_dir: Path, split: str, folder: Path | None = None) -> LabelledSplit:
    """``<folder>/train`` or ``<folder>/val`` (``flowers`` under the data root by default), decoded as the spec
    says (what the runtime feeds the model), classes in the spec's label order."""
    root = Path(folder) if folder is not None else Path(data_dir) / "flowers"
    name = TRAIN if split == TRAIN else "val"
    data = load_image_folder(root / name, spec, classes=spec.labels)
    ids = tuple(str(p.relative_to(root)) for p in data.files)
    return LabelledSplit(DatasetKind.IMAGE_FOLDER, name, data.images, data.labels, ids, source=root.name)
