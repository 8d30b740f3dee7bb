"""Fit the ASL landmark classifier on a user's own labelled photos: ``edge train asl --adapt DIR --out OUT``.

The photos go through the hand stage (``runtime.hands``: MediaPipe's palm detector and landmarker as ONNX, from
``--hands``, default ``--out``); each found hand becomes a 42-value feature vector, and a small MLP
(``train.models.landmarks``) is fitted on them in seconds on a CPU, with each hand also seen rotated (±15°),
scaled (±10 %) and jittered. Photos without a hand found are listed and left out. Writes
``<out>/asl_landmarks_adapted.pt``, ``.json`` and ``.metrics.json`` (with a leave-one-group-out accuracy over
the groups of DIR, when it has two or more); ``edge export --checkpoint`` makes the ONNX as for any model.

Labels: ``DIR/<label>/*.jpg`` (what ``edge capture`` writes; a second level ``DIR/<label>/<group>/`` names a
group), or ``DIR/<label>_<group>_<n>.jpg`` (the ``asl_real`` layout). The model's name ends in ``_adapted``: it
saw these photos, so nobody mistakes it for a zero-shot model.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from formats.artifacts import Artifacts
from formats.writer import Kind, write_artifact
from runtime.hands import HandFinder, HandModels, landmark_features
from runtime.preprocess import find_images, load_image
from train.checkpoint import load_checkpoint, save_checkpoint
from train.data.sign_mnist import ASL_LABELS
from train.errors import TrainError
from train.models.landmarks import LandmarkMLP, landmark_spec

_logger = logging.getLogger(__name__)
MODEL_NAME = "asl_landmarks_adapted"


@dataclass(frozen=True)
class FitConfig:
    """Chosen by leave-one-signer-out on asl_real/adapt only (docs/hands.md)."""

    steps: int = 400
    lr: float = 3e-3
    weight_decay: float = 1e-2
    label_smoothing: float = 0.1
    copies: int = 10  # augmented copies of each hand
    rotation_degrees: float = 15.0
    scale: float = 0.1
    jitter: float = 0.01  # × the wrist → middle-finger-base distance
    stretch: float = 0.0  # each copy's x scaled by up to ±this against y (photos stretched to a square, other lenses)
    mirror_p: float = 0.0  # each copy mirrored left ↔ right with this probability (a wrong handedness answer)
    seed: int = 0


# Fine-tuning the zero-shot asl_landmarks on a user's photos (``--from``): fewer, smaller steps from its weights.
# Chosen by leave-one-signer-out on asl_real/adapt: 77.3 % (400 steps at 3e-3: the same; 100 steps: 76.0 %).
FINE_TUNE = FitConfig(steps=200, lr=1e-3)


@dataclass(frozen=True)
class LabelledHands:
    landmarks: np.ndarray  # (N, 21, 3)
    right: np.ndarray  # (N,)
    labels: np.ndarray  # (N,) indices into the label list
    groups: np.ndarray  # (N,) str
    files: list[str]
    no_hand: list[str]


def labelled_photos(folder: Path, labels: tuple[str, ...]) -> list[tuple[Path, int, str]]:
    """(photo, label index, group) for every photo of ``folder`` whose label is one of ``labels``."""
    if not folder.is_dir():
        raise TrainError(f"{folder}: not a folder; give a folder of labelled photos (edge capture writes one)")
    out, unknown = [], set()
    for path in find_images(folder):
        parts = path.relative_to(folder).parts
        if len(parts) > 1:
            label, group = parts[0], parts[1] if len(parts) > 2 else "all"
        else:
            label, _, rest = path.stem.partition("_")
            group = rest.partition("_")[0] or "all"
        if label.lower() in labels:
            out.append((path, labels.index(label.lower()), group))
        else:
            unknown.add(label)
    if not out:
        raise TrainError(
            f"{folder}: no photo labelled with one of {''.join(labels)}; use DIR/<letter>/*.jpg or DIR/<letter>_*.jpg"
        )
    if unknown:
        _logger.warning(f"{folder}: skipped photos with labels not in the model's list: {', '.join(sorted(unknown))}")
    return out


def find_hands(photos: list[tuple[Path, int, str]], finder: HandFinder) -> LabelledHands:
    kept, no_hand = [], []
    for path, label, group in photos:
        hand = finder.find(load_image(path))
        if hand is None:
            no_hand.append(str(path))
        else:
            kept.append((hand.landmarks, hand.right, label, group, str(path)))
    if not kept:
        raise TrainError(f"no hand found in any of {len(photos)} photos; check they show one hand, large enough")
    lm, right, lab, grp, files = zip(*kept)
    return LabelledHands(np.stack(lm), np.array(right), np.array(lab), np.array(grp), list(files), no_hand)


def augmented(landmarks: np.ndarray, rng: np.random.Generator, config: FitConfig) -> list[np.ndarray]:
    """The hand and ``copies`` variants rotated in the image plane about the wrist, scaled and jittered."""
    out = [landmarks]
    for _ in range(config.copies):
        angle = np.deg2rad(rng.uniform(-config.rotation_degrees, config.rotation_degrees))
        c, s = np.cos(angle), np.sin(angle)
        points = landmarks.copy()
        xy = points[:, :2] - points[0, :2]
        unit = np.linalg.norm(xy[9]) or 1.0
        xy = xy @ np.array([[c, -s], [s, c]]).T * rng.uniform(1 - config.scale, 1 + config.scale)
        if config.stretch:  # drawn only when used: the adapted model's random stream stays as it was
            xy[:, 0] *= rng.uniform(1 - config.stretch, 1 + config.stretch)
        if config.mirror_p and rng.random() < config.mirror_p:
            xy[:, 0] = -xy[:, 0]
        points[:, :2] = xy + points[0, :2] + rng.normal(0, config.jitter * unit, size=(len(xy), 2))
        out.append(points)
    return out


def training_set(hands: LabelledHands, index: np.ndarray, config: FitConfig) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(config.seed)
    x, y = [], []
    for i in index:
        for points in augmented(hands.landmarks[i], rng, config):
            x.append(landmark_features(points, hands.right[i]))
            y.append(hands.labels[i])
    return torch.from_numpy(np.stack(x)), torch.from_numpy(np.array(y, dtype=np.int64))


def features(hands: LabelledHands, index: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack([landmark_features(hands.landmarks[i], hands.right[i]) for i in index]))


def fit(
    x: torch.Tensor, y: torch.Tensor, classes: int, config: FitConfig, start: LandmarkMLP | None = None
) -> LandmarkMLP:
    """Full-batch AdamW: a few hundred steps over a few thousand feature rows take seconds on a CPU. ``start``: a
    trained model to fine-tune (a copy; its standardisation kept) instead of a fresh one."""
    torch.manual_seed(config.seed)
    if start is not None:
        model = copy.deepcopy(start)
    else:
        model = LandmarkMLP(classes, x.shape[1])
        model.set_standardisation(x)
    optimiser = torch.optim.AdamW(model.parameters(), config.lr, weight_decay=config.weight_decay)
    model.train()
    for _ in range(config.steps):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y, label_smoothing=config.label_smoothing)
        loss.backward()
        optimiser.step()
    return model.eval()


def predict(model: LandmarkMLP, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(x).argmax(1).numpy()


def leave_one_group_out(
    hands: LabelledHands, classes: int, config: FitConfig, start: LandmarkMLP | None = None
) -> dict:
    """Accuracy on each group's hands by a model fitted on the other groups (the found hands only)."""
    per_group = {}
    for group in sorted(set(hands.groups)):
        held = np.nonzero(hands.groups == group)[0]
        rest = np.nonzero(hands.groups != group)[0]
        model = fit(*training_set(hands, rest, config), classes, config, start)
        right = int((predict(model, features(hands, held)) == hands.labels[held]).sum())
        per_group[group] = {"right": right, "hands": len(held)}
    total = sum(g["right"] for g in per_group.values())
    return {"groups": per_group, "accuracy": total / len(hands.labels)}


def fit_adapted(
    folder: Path,
    hand_models: HandModels,
    out: Path,
    config: FitConfig | None = None,
    labels=ASL_LABELS,
    start: Path | None = None,
) -> dict:
    """Find the hands in ``folder``'s photos, fit (or fine-tune the zero-shot ``start`` checkpoint, train
    ``asl_landmarks``), save ``<out>/asl_landmarks_adapted.{pt,json,metrics.json}``."""
    config = config or (FINE_TUNE if start is not None else FitConfig())
    initial = _zero_shot(start, labels) if start is not None else None
    photos = labelled_photos(folder, labels)
    with HandFinder(hand_models) as finder:
        hands = find_hands(photos, finder)
    spec = landmark_spec(MODEL_NAME, labels)
    report = {
        "model": MODEL_NAME,
        "adapt_dir": str(folder),
        "photos": len(photos),
        "hands_found": len(hands.labels),
        "no_hand": hands.no_hand,
        "config": config.__dict__,
        "start": str(start) if start is not None else None,
    }
    if len(set(hands.groups)) > 1:
        report["leave_one_group_out"] = leave_one_group_out(hands, len(labels), config, initial)
    model = fit(*training_set(hands, np.arange(len(hands.labels)), config), len(labels), config, initial)
    report["fit_accuracy"] = float(
        (predict(model, features(hands, np.arange(len(hands.labels)))) == hands.labels).mean()
    )
    artifacts = Artifacts(out, MODEL_NAME)
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(artifacts.checkpoint, MODEL_NAME, model, spec, report)
    spec.save(artifacts.spec)
    write_artifact(artifacts.metrics, json.dumps(report, indent=2) + "\n", Kind.REPORT, out)
    return report


def _zero_shot(path: Path, labels: tuple[str, ...]) -> LandmarkMLP:
    checkpoint = load_checkpoint(path)
    if not isinstance(checkpoint.model, LandmarkMLP) or tuple(checkpoint.spec.labels) != tuple(labels):
        raise TrainError(
            f"{path}: {checkpoint.model_name} is not a landmark classifier of the letters {''.join(labels)}; "
            "give the zero-shot one (edge train asl_landmarks --out DIR writes DIR/asl_landmarks.pt)"
        )
    return checkpoint.model


def run(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    hands_dir = Path(args.hands) if args.hands else out
    start = getattr(args, "start", None)
    report = fit_adapted(Path(args.adapt), HandModels.in_folder(hands_dir).check(), out, start=start)
    cv = report.get("leave_one_group_out")
    cv_text = f"; leave-one-group-out {cv['accuracy']:.1%} on the found hands" if cv else ""
    _logger.info(
        f"{MODEL_NAME}: hands found in {report['hands_found']} of {report['photos']} photos{cv_text}; wrote {out}. "
        f"Next: edge export --checkpoint {Artifacts(out, MODEL_NAME).checkpoint} --out {out}"
    )
    return report
