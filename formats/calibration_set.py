"""The calibration set's files: ``<model>.calib.npz`` (uint8 pixels, labels) and ``<model>.calib.json``.

Written on the training machine by ``python -m calibration`` (which also chooses the samples, see
``calibration.calibration_set``) and read on both sides: the calibration itself, and on the device the engine
builder's golden I/O and the deploy bundle. Loading re-checks the sha256 of the pixels and labels
against the manifest and refuses any split but the training split. numpy only.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from formats.artifacts import Artifacts
from formats.calibration_run import check_run
from formats.errors import RuntimeToolkitError
from formats.writer import Kind, write_artifact

MANIFEST_FORMAT = "edge-toolkit-calibration-set/1"
TRAIN = "train"


class CalibrationSetError(RuntimeToolkitError):
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

    def chunks(self, size: int) -> list[CalibrationSet]:
        """Consecutive pieces of at most ``size`` samples (for bounded-memory calibration)."""
        return [
            CalibrationSet(
                self.model,
                self.dataset,
                self.split,
                self.seed,
                self.images[i : i + size],
                self.labels[i : i + size],
                self.ids[i : i + size],
            )
            for i in range(0, len(self.labels), size)
        ]

    def class_counts(self) -> dict[int, int]:
        values, counts = np.unique(self.labels, return_counts=True)
        return {int(v): int(c) for v, c in zip(values, counts)}

    def manifest(self) -> dict:
        return {
            "format": MANIFEST_FORMAT,
            "model": self.model,
            "dataset": self.dataset,
            "split": self.split,
            "seed": self.seed,
            "size": int(len(self.labels)),
            "selection": "class-stratified round robin",
            "image_shape": list(self.images.shape[1:]),
            "class_counts": {str(k): v for k, v in self.class_counts().items()},
            "sha256": self.sha256,
            "ids": list(self.ids),
            "labels": [int(x) for x in self.labels],
        }


def content_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update(repr((images.dtype.str, images.shape)).encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels.astype(np.int64)).tobytes())
    return digest.hexdigest()


def save_calibration_set(calib: CalibrationSet, names: Artifacts) -> tuple[Path, Path]:
    """``<m>.calib.npz`` and ``<m>.calib.json`` of ``names`` (the set's own model)."""
    if names.model != calib.model:
        raise ValueError(f"a calibration set of {calib.model!r} saved as {names.model!r}")
    npz, manifest = names.calibration_set, names.calibration_manifest
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=calib.images, labels=calib.labels)
    write_artifact(npz, buffer.getvalue(), Kind.CALIB_SET, names.folder)
    write_artifact(manifest, json.dumps(calib.manifest(), indent=1) + "\n", Kind.CALIB_MANIFEST, names.folder)
    return npz, manifest


def load_calibration_set(names: Artifacts) -> CalibrationSet:
    npz, manifest_path, model = names.calibration_set, names.calibration_manifest, names.model
    check_run(names, [npz, manifest_path])  # a set from another run than the files derived from it
    try:
        manifest = json.loads(manifest_path.read_text())
        with np.load(npz, allow_pickle=False) as data:
            images, labels = data["images"], data["labels"]
    except FileNotFoundError as exc:
        raise CalibrationSetError(
            f"{exc.filename}: calibration set not found; run `python -m calibration --model {model}` to create it"
        ) from exc
    except (OSError, ValueError, KeyError) as exc:
        raise CalibrationSetError(
            f"{npz} / {manifest_path}: unreadable calibration set ({exc}); "
            f"delete both and run `python -m calibration --model {model}` again"
        ) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise CalibrationSetError(f"{manifest_path}: format {found!r}, expected {MANIFEST_FORMAT!r}")
    if manifest.get("split") != TRAIN:
        raise CalibrationSetError(
            f"{manifest_path}: split {manifest.get('split')!r}; calibration must use the training split"
        )
    actual = content_sha256(images, labels)
    if actual != manifest.get("sha256"):
        raise CalibrationSetError(
            f"{npz}: sha256 {actual[:12]}… does not match its manifest "
            f"({str(manifest.get('sha256'))[:12]}…); the file changed after it was written. "
            f"Run `python -m calibration --model {model}` again"
        )
    return CalibrationSet(
        manifest["model"],
        manifest["dataset"],
        manifest["split"],
        int(manifest["seed"]),
        images,
        labels,
        tuple(manifest["ids"]),
    )
