"""The calibration set: deterministic, class-stratified, from the training split, hashed.

``select_stratified`` picks the same samples for the same labels and seed on every machine: for
each class a seeded permutation of its samples, then round-robin across classes until the size is
reached, so every class is represented (as evenly as the class sizes allow). The set is written as
``<name>.calib.npz`` (the uint8 pixels, so a Jetson can calibrate without the data set) and
``<name>.calib.json`` (the manifest: data set, split, seed, sample ids, per-class counts and the
sha256 of the pixels and labels). Loading verifies the hash and refuses anything but a training split.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.data import TRAIN, LabelledSplit
from runtime.atomic import write_bytes_atomic, write_text_atomic

MANIFEST_FORMAT = "edge-toolkit-calibration-set/1"
DEFAULT_SIZE = 512
DEFAULT_SEED = 0


class CalibrationSetError(Exception):
    """A calibration set that cannot be built or does not match its manifest."""


@dataclass(frozen=True)
class CalibrationSet:
    model: str
    dataset: str
    split: str
    seed: int
    images: np.ndarray  # uint8, (N, H, W) or (N, H, W, C)
    labels: np.ndarray  # (N,) int64
    ids: tuple[str, ...]

    @property
    def sha256(self) -> str:
        return content_sha256(self.images, self.labels)

    def chunks(self, size: int) -> list["CalibrationSet"]:
        """Consecutive pieces of at most ``size`` samples (for bounded-memory calibration)."""
        return [CalibrationSet(self.model, self.dataset, self.split, self.seed, self.images[i:i + size],
                               self.labels[i:i + size], self.ids[i:i + size]) for i in range(0, len(self.labels), size)]

    def class_counts(self) -> dict[int, int]:
        values, counts = np.unique(self.labels, return_counts=True)
        return {int(v): int(c) for v, c in zip(values, counts)}

    def manifest(self) -> dict:
        return {
            "format": MANIFEST_FORMAT, "model": self.model, "dataset": self.dataset, "split": self.split,
            "seed": self.seed, "size": int(len(self.labels)), "selection": "class-stratified round robin",
            "image_shape": list(self.images.shape[1:]), "class_counts": {str(k): v for k, v in self.class_counts().items()},
            "sha256": self.sha256, "ids": list(self.ids), "labels": [int(x) for x in self.labels],
        }


def content_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update(repr((images.dtype.str, images.shape)).encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels.astype(np.int64)).tobytes())
    return digest.hexdigest()


def select_stratified(labels: np.ndarray, size: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """Indices of ``size`` samples spread over the classes present in ``labels`` (sorted ascending)."""
    labels = np.asarray(labels)
    if size < 1:
        raise CalibrationSetError(f"calibration set size must be at least 1, got {size}")
    if size > len(labels):
        raise CalibrationSetError(f"calibration set size {size} exceeds the {len(labels)} training samples; "
                                  "pass a smaller --calib-size")
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


def build_calibration_set(model: str, split: LabelledSplit, size: int = DEFAULT_SIZE,
                          seed: int = DEFAULT_SEED) -> CalibrationSet:
    if split.split != TRAIN:
        raise CalibrationSetError(f"{split.dataset}/{split.split}: calibration samples must come from the training "
                                  "split, never from the split the model is judged on")
    index = select_stratified(split.labels, size, seed)
    return CalibrationSet(model, split.dataset, split.split, seed, split.images[index], split.labels[index],
                          tuple(split.ids[i] for i in index))


def calib_paths(folder: Path, model: str) -> tuple[Path, Path]:
    return Path(folder) / f"{model}.calib.npz", Path(folder) / f"{model}.calib.json"


def save_calibration_set(calib: CalibrationSet, folder: Path) -> tuple[Path, Path]:
    npz, manifest = calib_paths(folder, calib.model)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=calib.images, labels=calib.labels)
    write_bytes_atomic(npz, buffer.getvalue())
    write_text_atomic(manifest, json.dumps(calib.manifest(), indent=1) + "\n")
    return npz, manifest


def load_calibration_set(folder: Path, model: str) -> CalibrationSet:
    npz, manifest_path = calib_paths(folder, model)
    try:
        manifest = json.loads(manifest_path.read_text())
        with np.load(npz, allow_pickle=False) as data:
            images, labels = data["images"], data["labels"]
    except FileNotFoundError as exc:
        raise CalibrationSetError(f"{exc.filename}: calibration set not found; run "
                                  f"`python -m calibration --model {model}` to create it") from exc
    except (OSError, ValueError, KeyError) as exc:
        raise CalibrationSetError(f"{npz} / {manifest_path}: unreadable calibration set ({exc}); "
                                  f"delete both and run `python -m calibration --model {model}` again") from exc
    if manifest.get("format") != MANIFEST_FORMAT:
        raise CalibrationSetError(f"{manifest_path}: format {manifest.get('format')!r}, expected {MANIFEST_FORMAT!r}")
    if manifest.get("split") != TRAIN:
        raise CalibrationSetError(f"{manifest_path}: split {manifest.get('split')!r}; calibration must use the "
                                  "training split")
    actual = content_sha256(images, labels)
    if actual != manifest.get("sha256"):
        raise CalibrationSetError(f"{npz}: sha256 {actual[:12]}… does not match its manifest "
                                  f"({str(manifest.get('sha256'))[:12]}…); the file changed after it was written. "
                                  f"Run `python -m calibration --model {model}` again")
    return CalibrationSet(manifest["model"], manifest["dataset"], manifest["split"], int(manifest["seed"]),
                          images, labels, tuple(manifest["ids"]))
