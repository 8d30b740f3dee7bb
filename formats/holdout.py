"""A small labelled held-out sample that travels with a model: ``<m>.holdout.npz`` (numpy only).

The accuracy gate draws it from the model card's held-out split (a seeded sample of a few hundred images) and
writes it beside the model; ``edge bundle create`` ships it, so ``edge bench all`` on a device scores every file
without the data set. It keeps where it came from (data set, split, n of how many) and the card's budgets, since
the card itself (``train.cards``) needs PyTorch and a device has none.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from formats.artifacts import Artifacts
from formats.errors import RuntimeToolkitError
from formats.writer import Kind, write_artifact

HOLDOUT_FORMAT = "edge-toolkit-holdout/1"
SAMPLE_SIZE = 300  # ±~3 pp Wilson half-width at 90 %: enough to see a broken file, not to judge a 0.5 pp budget


class HoldoutError(RuntimeToolkitError):
    """An unreadable held-out sample."""


@dataclass(frozen=True)
class HoldoutInfo:
    """Where the sample came from and the card's budgets (fractions: 0.005 = 0.5 pp)."""

    source: str  # "mnist/test"
    drawn_from: int  # images in that split
    seed: int
    int8_max_drop: float  # INT8 files may lose at most this accuracy against FP32
    min_agreement: float  # other files agree with FP32's top-1 at least this often


@dataclass(frozen=True)
class HoldoutSample:
    images: np.ndarray  # uint8 (N, H, W) or (N, H, W, C), as the calibration set keeps them
    labels: np.ndarray  # (N,) class indices
    info: HoldoutInfo


def draw(images: np.ndarray, labels: np.ndarray, count: int = SAMPLE_SIZE, seed: int = 0) -> np.ndarray:
    """Indices of a seeded sample without replacement (all of them when the split is smaller)."""
    if len(labels) <= count:
        return np.arange(len(labels))
    return np.sort(np.random.default_rng(seed).choice(len(labels), count, replace=False))


def save_holdout(folder: Path, model: str, sample: HoldoutSample) -> Path:
    buffer = io.BytesIO()
    meta = json.dumps({"format": HOLDOUT_FORMAT, **asdict(sample.info)})
    np.savez_compressed(buffer, images=sample.images, labels=sample.labels, meta=np.array(meta))
    # Kind.CALIB_SET: the same look (uint8 images and labels in an .npz) as the calibration set
    return write_artifact(Artifacts(Path(folder), model).holdout_sample, buffer.getvalue(), Kind.CALIB_SET, folder)


def load_holdout(folder: Path, model: str) -> HoldoutSample | None:
    """The sample beside the model, None when there is none; HoldoutError for a damaged one."""
    path = Artifacts(Path(folder), model).holdout_sample
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            images, labels = data["images"], data["labels"].astype(np.int64)
        if meta.pop("format", None) != HOLDOUT_FORMAT or len(images) != len(labels):
            raise ValueError(f"expected format {HOLDOUT_FORMAT} with one label per image")
        return HoldoutSample(images, labels, HoldoutInfo(**meta))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HoldoutError(
            f"{path}: unreadable held-out sample ({exc}); run `edge gate --model {model}` again to rewrite it"
        ) from exc
