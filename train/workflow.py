"""Train a registered classifier on in-memory uint8 images, evaluate once on the test split, save.

Shared by the MNIST and ASL commands. Images are decoded uint8 arrays (N, H, W) or (N, H, W, C);
they become model inputs through ``runtime.preprocess.normalize`` — the runtime's own
preprocessing — after the optional training augmentation, never instead of it.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from formats.artifacts import Artifacts
from formats.writer import Kind, check_replace, write_artifact
from runtime.preprocess import normalize, prepare_pixels
from runtime.spec import ModelSpec
from train.checkpoint import save_checkpoint
from train.loop import TrainConfig, barrier, evaluate, fit, is_main_process, seed_everything, split_train_val
from train.models import get_model

_logger = logging.getLogger(__name__)

Augment = Callable[[torch.Tensor], torch.Tensor]  # pixels (N, C, H, W) 0..255 → float pixels 0..255
TestLoader = Callable[[], tuple[np.ndarray, np.ndarray]]


def to_tensors(images: np.ndarray, labels: np.ndarray, spec: ModelSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images → model inputs through the runtime's own preprocessing."""
    return torch.from_numpy(normalize(images, spec)), torch.from_numpy(labels.astype(np.int64))


def batch_transform(spec: ModelSpec, augment: Augment) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 (N, C, H, W) pixels → augmented pixels → the runtime's normalize → model input."""

    def transform(xb: torch.Tensor) -> torch.Tensor:
        pixels = augment(xb).numpy()
        channels_last = np.moveaxis(pixels, 1, -1) if spec.channels > 1 else pixels[:, 0]
        return torch.from_numpy(normalize(channels_last, spec))

    return transform


def train_inputs(images: np.ndarray, labels: np.ndarray, spec: ModelSpec, augment: Augment | None):
    """(x, y) tensors and the per-batch transform: normalized up front, or raw pixels + augment."""
    if augment is None:
        return to_tensors(images, labels, spec), None
    pixels = images[:, None] if images.ndim == 3 else np.moveaxis(images, -1, 1)
    return (torch.from_numpy(np.ascontiguousarray(pixels)), torch.from_numpy(labels.astype(np.int64))), batch_transform(
        spec, augment
    )


def kfold_indices(n: int, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    folds = np.array_split(np.random.default_rng(seed).permutation(n), k)
    return [(np.sort(np.concatenate(folds[:i] + folds[i + 1 :])), np.sort(folds[i])) for i in range(k)]


def cross_validate(
    model_name: str,
    images: np.ndarray,
    labels: np.ndarray,
    spec: ModelSpec,
    k: int,
    grid: list[TrainConfig],
    augment: Augment | None,
    progress: bool,
) -> list[dict]:
    """Mean ± std validation accuracy of each grid setting over the same K folds."""
    results = []
    for config in grid:
        scores = []
        for fold, (tr, va) in enumerate(kfold_indices(len(images), k, config.seed)):
            (x, y), transform = train_inputs(images[tr], labels[tr], spec, augment)
            val = to_tensors(images[va], labels[va], spec)
            seed_everything(config.seed)
            model = get_model(model_name).build()
            fit(
                model,
                (x, y),
                val,
                config,
                transform=transform,
                progress=progress,
                desc=f"lr={config.lr:g} bs={config.batch_size} fold {fold + 1}/{k}",
            )
            scores.append(evaluate(model, *val)[1])
        mean, std = statistics.fmean(scores), statistics.pstdev(scores)
        _say(f"kfold lr={config.lr:g} batch={config.batch_size}: val acc {mean:.4f} ± {std:.4f} over {k} folds")
        results.append(
            {"lr": config.lr, "batch_size": config.batch_size, "fold_accuracies": scores, "mean": mean, "std": std}
        )
    return results


def train_and_save(
    model_name: str,
    images: np.ndarray,
    labels: np.ndarray,
    load_test: TestLoader,
    out: Path,
    config: TrainConfig,
    augment: Augment | None = None,
    kfold: int = 0,
    grid: list[TrainConfig] | None = None,
    progress: bool = True,
    info: dict | None = None,
    spec: ModelSpec | None = None,
    weights: str = "none",
) -> dict:
    """Train (after optional K-fold model selection), test once, write <out>/<model>.pt/.json/.metrics.json.

    ``spec`` None means the registry's default spec; ``weights`` is where a pretrained backbone starts.
    """
    entry = get_model(model_name)
    spec = spec or entry.spec()
    check_outputs(out, model_name)  # a file of another kind in --out is refused before training, not after
    images = prepare_pixels(images, spec)  # the runtime's own deploy steps (MNIST: polarity, background, framing)
    report: dict = {"model": model_name, **(info or {}), "train_images": len(images)}
    if kfold:
        cv = cross_validate(model_name, images, labels, spec, kfold, grid or [config], augment, progress)
        best = max(cv, key=lambda r: r["mean"])
        config = replace(config, lr=best["lr"], batch_size=best["batch_size"])
        _say(f"kfold chose lr={config.lr:g} batch={config.batch_size}; training on the full training split")
        report["kfold"] = {"k": kfold, "results": cv, "chosen": {"lr": config.lr, "batch_size": config.batch_size}}
        train_idx, val_idx = np.arange(len(images)), np.arange(0)
    else:
        train_idx, val_idx = split_train_val(len(images), config.val_fraction, config.seed)

    train_xy, transform = train_inputs(images[train_idx], labels[train_idx], spec, augment)
    val = to_tensors(images[val_idx], labels[val_idx], spec)
    seed_everything(config.seed)
    model = entry.build(spec, weights)
    # A model with a pretrained part says how fast each part may move (``param_groups``); others get plain Adam.
    optimizer = torch.optim.Adam(model.param_groups(config.lr)) if hasattr(model, "param_groups") else None
    history = fit(
        model, train_xy, val, config, transform=transform, progress=progress, desc=model_name, optimizer=optimizer
    )
    if not is_main_process():  # rank 0 alone evaluates, writes and reports
        barrier()
        return report
    # The test split is loaded here, once, for the final evaluation only.
    test_images, test_labels = load_test()
    test_images = prepare_pixels(test_images, spec)
    test_loss, test_acc = evaluate(model, *to_tensors(test_images, test_labels, spec))
    report.setdefault("augmentation", augment is not None)
    report.update(
        {
            "config": config.to_dict(),
            "history": [vars(h) for h in history],
            "test": {"loss": test_loss, "accuracy": test_acc, "images": len(test_labels)},
        }
    )
    save_run(out, model_name, model, spec, report)
    _logger.info(f"{model_name}: test accuracy {test_acc:.4f} on {len(test_labels)} images; wrote {out}")
    barrier()
    return report


def check_outputs(out: Path, model_name: str) -> None:
    names = Artifacts(out, model_name)
    for path, kind in ((names.checkpoint, Kind.CHECKPOINT), (names.spec, Kind.SPEC), (names.metrics, Kind.REPORT)):
        check_replace(path, kind)


def save_run(out: Path, model_name: str, model: torch.nn.Module, spec: ModelSpec, report: dict) -> None:
    """<out>/<model>.pt (weights + spec + report), <model>.json (spec), <model>.metrics.json."""
    artifacts = Artifacts(out, model_name)
    save_checkpoint(artifacts.checkpoint, model_name, model, spec, report)
    spec.save(artifacts.spec)
    write_artifact(artifacts.metrics, json.dumps(report, indent=2) + "\n", Kind.REPORT, out)


def _say(message: str) -> None:
    if is_main_process():
        _logger.info(message)
