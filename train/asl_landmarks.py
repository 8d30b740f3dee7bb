"""The zero-shot landmark classifier, from Sign-MNIST alone: ``edge train asl_landmarks --out OUT --hands DIR``.

A Sign-MNIST image is already a hand crop, too small (28×28) for the palm detector (it finds a hand in ~3 % of
upscaled images) but not for the landmarker run on it directly (``runtime.hands.HandFinder.find_in_crop``: the
image upscaled to 224×224, the whole of it as the landmarker's region, no palm detection). Each image whose hand
the landmarker accepts becomes the same 42 features a photo's hand gives at run time, and the MLP of
``asl_landmarks_adapted`` is fitted on them with augmentation aimed at the gap to real photos (rotation, scale,
stretch, jitter, mirroring). It never sees a real photo: ``asl_landmarks`` is zero-shot, scored on all of
``asl_real``. Writes ``<out>/asl_landmarks.pt``, ``.json`` and ``.metrics.json``; ``edge export`` makes the ONNX.

The landmarker costs ~0.13 s per image on one idle CPU core, so it reads ``--per-class`` images of each letter
(default 100: ~5 min) rather than all 27,455.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from formats.artifacts import Artifacts
from formats.cli import positive_int
from formats.writer import Kind, write_artifact
from runtime.hands import LANDMARK_SIZE, HandFinder, HandModels
from train.checkpoint import save_checkpoint
from train.data.paths import resolve_data_dir
from train.data.sign_mnist import ASL_LABELS, load_sign_mnist
from train.errors import TrainError
from train.landmarks import FitConfig, LabelledHands, features, fit, predict, training_set
from train.models.landmarks import landmark_spec

_logger = logging.getLogger(__name__)
MODEL_NAME = "asl_landmarks"
PER_CLASS = 100
VALIDATION_FRACTION = 0.2
# Chosen on Sign-MNIST validation and asl_real/adapt (docs/hands.md); never on asl_real/test.
ZERO_SHOT = FitConfig(copies=10, rotation_degrees=25.0, scale=0.1, jitter=0.03, stretch=0.15, mirror_p=0.0)


def sign_mnist_hands(data_dir: Path, per_class: int, finder: HandFinder, seed: int = 0) -> tuple[LabelledHands, int]:
    """The hands the landmarker accepts among ``per_class`` training images of each letter (a seeded draw), and
    how many images were read."""
    split = load_sign_mnist(data_dir, "train")
    rng = np.random.default_rng(seed)
    chosen = np.sort(
        np.concatenate([rng.permutation(np.nonzero(split.labels == c)[0])[:per_class] for c in np.unique(split.labels)])
    )
    kept, no_hand = [], []
    for i in chosen:
        image = Image.fromarray(split.images[i]).resize((LANDMARK_SIZE, LANDMARK_SIZE), Image.Resampling.BICUBIC)
        hand = finder.find_in_crop(image)
        if hand is None:
            no_hand.append(f"train[{i}]")
        else:
            kept.append((hand.landmarks, hand.right, split.labels[i], f"train[{i}]"))
    if not kept:
        raise TrainError(f"{data_dir}: the landmarker found no hand in {len(chosen)} Sign-MNIST images")
    lm, right, lab, files = zip(*kept)
    groups = np.array(["sign_mnist"] * len(kept))
    return LabelledHands(np.stack(lm), np.array(right), np.array(lab), groups, list(files), no_hand), len(chosen)


def train_asl_landmarks(
    data_dir: Path, hand_models: HandModels, out: Path, per_class: int = PER_CLASS, config: FitConfig = ZERO_SHOT
) -> dict:
    """Landmarks of Sign-MNIST, a validation score on a held-out fifth, the model fitted on all of them, saved."""
    with HandFinder(hand_models) as finder:
        hands, read = sign_mnist_hands(data_dir, per_class, finder, config.seed)
    labels = ASL_LABELS
    everything = np.arange(len(hands.labels))
    held = np.random.default_rng(config.seed).random(len(everything)) < VALIDATION_FRACTION
    model = fit(*training_set(hands, everything[~held], config), len(labels), config)
    validation = float((predict(model, features(hands, everything[held])) == hands.labels[held]).mean())
    model = fit(*training_set(hands, everything, config), len(labels), config)
    found = np.bincount(hands.labels, minlength=len(labels))
    report = {
        "model": MODEL_NAME,
        "data": "sign_mnist train (no real photo: zero-shot)",
        "images": read,
        "hands_found": len(hands.labels),
        "hands_found_per_class": dict(zip(labels, found.tolist())),
        "validation_accuracy": validation,
        "validation_hands": int(held.sum()),
        "config": asdict(config),
        "per_class": per_class,
    }
    artifacts = Artifacts(out, MODEL_NAME)
    out.mkdir(parents=True, exist_ok=True)
    spec = landmark_spec(MODEL_NAME, labels)
    save_checkpoint(artifacts.checkpoint, MODEL_NAME, model, spec, report)
    spec.save(artifacts.spec)
    write_artifact(artifacts.metrics, json.dumps(report, indent=2) + "\n", Kind.REPORT, out)
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder for checkpoint, spec and metrics")
    parser.add_argument("--data-dir", default=None, help="data root holding sign_mnist/ (default $EDGE_DATA_DIR)")
    parser.add_argument(
        "--hands", type=Path, default=None, help="folder of the hand models (default --out; `edge hands` makes them)"
    )
    parser.add_argument(
        "--per-class",
        type=positive_int(5000),
        default=PER_CLASS,
        help=f"Sign-MNIST training images read per letter (default {PER_CLASS}; ~0.13 s each on a CPU core)",
    )


def run(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    hands_dir = Path(args.hands) if args.hands else out
    report = train_asl_landmarks(
        resolve_data_dir(args.data_dir), HandModels.in_folder(hands_dir).check(), out, args.per_class
    )
    _logger.info(
        f"{MODEL_NAME}: hands found in {report['hands_found']} of {report['images']} Sign-MNIST images; "
        f"validation {report['validation_accuracy']:.1%} on {report['validation_hands']}; wrote {out}. "
        f"Next: edge export --checkpoint {Artifacts(out, MODEL_NAME).checkpoint} --out {out}"
    )
    return report
