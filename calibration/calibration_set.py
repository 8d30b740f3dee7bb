"""The calibration set: deterministic, class-stratified, from the training split, hashed.

``select_stratified`` picks the same samples for the same labels and seed on every machine: for
each class a seeded permutation of its samples, then round-robin across classes until the size is
reached, so every class is represented (as evenly as the class sizes allow). The set is written as
``<name>.calib.npz`` (the uint8 pixels, so a Jetson can calibrate without the data set) and
``<name>.calib.json`` (the manifest: data set, split, seed, sample ids, per-class counts and the
sha256 of the pixels and labels). Loading verifies the hash and refuses anything but a training split.
"""

from __future__ import annotations

import numpy as np

# The calibration-set file format lives in runtime/ (the device side reads it too); re-exported for callers here.
from formats.calibration_set import MANIFEST_FORMAT as MANIFEST_FORMAT
from formats.calibration_set import TRAIN, CalibrationSet, CalibrationSetError
from formats.calibration_set import content_sha256 as content_sha256
from formats.calibration_set import load_calibration_set as load_calibration_set
from formats.calibration_set import save_calibration_set as save_calibration_set
from runtime.preprocess import prepare_pixels
from runtime.spec import ModelSpec
from train.data.splits import LabelledSplit

DEFAULT_SIZE = 512
DEFAULT_SEED = 0

# The file format (CalibrationSet, save/load, the hash) is in formats.calibration_set: the device reads it
# too, without torch. This module only chooses the samples, which needs the training data.


def select_stratified(labels: np.ndarray, size: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """Indices of ``size`` samples spread over the classes present in ``labels`` (sorted ascending)."""
    labels = np.asarray(labels)
    if size < 1:
        raise CalibrationSetError(f"calibration set size must be at least 1, got {size}")
    if size > len(labels):
        raise CalibrationSetError(
            f"calibration set size {size} exceeds the {len(labels)} training samples; pass a smaller --calib-size"
        )
    rng = np.random.default_rng(seed)
    queues = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    chosen: list[int] = []
    depth = 0
    while len(chosen) < size:
        for queue in queues:
            if depth < len(queue) and len(chosen) < size:
                chosen.append(int(queue[depth]))
        depth += 1
    return np.sort(np.array(chosen, dtype=np.int64))


def build_calibration_set(
    model: str, split: LabelledSplit, size: int = DEFAULT_SIZE, seed: int = DEFAULT_SEED, spec: ModelSpec | None = None
) -> CalibrationSet:
    """The chosen samples as the model's pixels: through ``spec``'s deploy steps (``prepare_pixels``) when given,
    so the ranges, golden I/O and latency samples read from the set see what the runtime feeds the model."""
    if split.split != TRAIN:
        raise CalibrationSetError(
            f"{split.dataset}/{split.split}: calibration samples must come from the training "
            "split, never from the split the model is judged on"
        )
    index = select_stratified(split.labels, size, seed)
    return CalibrationSet(
        model,
        split.dataset,
        split.split,
        seed,
        split.images[index] if spec is None else prepare_pixels(split.images[index], spec),
        split.labels[index],
        tuple(split.ids[i] for i in index),
    )
