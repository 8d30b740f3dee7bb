"""Transfer learning (course lab 5): ``python -m train transfer --backbone vgg16 --weights imagenet --data DIR``.

DIR is an ImageFolder (``DIR/<class>/*.jpg``), or holds ``train/`` and ``val/`` ImageFolders. Phase 1
freezes the pretrained backbone and trains a new head; phase 2 unfreezes everything and fine-tunes
with a small learning rate (the course uses 1e-6). Both phases are reported; the validation split is
the held-out data.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from formats.cli import non_negative_int, positive_float, positive_int, random_seed
from train.augment import AugmentConfig, course_augmentation
from train.data.image_folder import list_image_folder, load_image_folder
from train.loop import TrainConfig, evaluate, fit, is_main_process, seed_everything, split_train_val
from train.models import get_model
from train.models.transfer import BACKBONES
from train.workflow import check_outputs, save_run, to_tensors, train_inputs

_logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backbone", choices=sorted(BACKBONES), default="vgg16", help="the pretrained network")
    parser.add_argument(
        "--weights",
        default="imagenet",
        help="imagenet (torchvision download for vgg16; shipped package for efficientnet_lite0), "
        "none (random init, for tests), or a path to a .pth state dict",
    )
    parser.add_argument("--data", type=Path, required=True, help="ImageFolder root, or a folder with train/ and val/")
    parser.add_argument("--out", type=Path, required=True, help="output folder for checkpoint, spec and metrics")
    parser.add_argument("--image-size", type=positive_int(8192), default=224, help="model input side (default 224)")
    parser.add_argument("--epochs", type=positive_int(100_000), default=5, help="phase 1: frozen backbone, new head")
    parser.add_argument("--lr", type=positive_float(10.0), default=1e-3, help="phase 1 learning rate")
    parser.add_argument(
        "--finetune-epochs", type=non_negative_int(100_000), default=2, help="phase 2: everything unfrozen"
    )
    parser.add_argument(
        "--finetune-lr", type=positive_float(10.0), default=1e-6, help="phase 2 learning rate (course: 1e-6)"
    )
    parser.add_argument("--batch-size", type=positive_int(1_000_000), default=32, help="images per step")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="held out when DIR has no val/ folder")
    parser.add_argument("--seed", type=random_seed(), default=0, help="seeds the split, the new head and the shuffling")
    parser.add_argument("--label-smoothing", type=float, default=0.1, help="cross-entropy label smoothing")
    parser.add_argument(
        "--no-augment", action="store_true", help="train without the course augmentation (crops, rotation, jitter)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar, only the per-epoch lines")


def run(args: argparse.Namespace) -> dict:
    return train_transfer(
        args.backbone,
        args.weights,
        args.data,
        args.out,
        image_size=args.image_size,
        head=TrainConfig(
            args.epochs, args.lr, args.batch_size, args.seed, args.val_fraction, label_smoothing=args.label_smoothing
        ),
        finetune=TrainConfig(
            args.finetune_epochs, args.finetune_lr, args.batch_size, args.seed, label_smoothing=args.label_smoothing
        ),
        augment=not args.no_augment,
        progress=not args.no_progress,
    )


def _splits(data: Path, spec, val_fraction: float, seed: int, canvas: bool):
    """(train images, train labels, val images, val labels, classes).

    With ``canvas`` the training images keep room around the crop for augmentation; without it they are
    exactly what the runtime feeds the model. Validation images always are.
    """
    if (data / "train").is_dir() and (data / "val").is_dir():
        train = load_image_folder(data / "train", spec, for_training=canvas)
        val = load_image_folder(data / "val", spec, classes=train.classes)
        return train.images, train.labels, val.images, val.labels, train.classes
    exact = load_image_folder(data, spec)
    train = load_image_folder(data, spec, for_training=True, classes=exact.classes) if canvas else exact
    tr, va = split_train_val(len(exact.labels), val_fraction, seed)
    return train.images[tr], train.labels[tr], exact.images[va], exact.labels[va], exact.classes


def train_transfer(
    backbone: str,
    weights: str,
    data: Path,
    out: Path,
    image_size: int = 224,
    head: TrainConfig | None = None,
    finetune: TrainConfig | None = None,
    augment: bool = True,
    progress: bool = True,
) -> dict:
    head = head or TrainConfig(epochs=5, batch_size=32, val_fraction=0.2)
    finetune = finetune or TrainConfig(epochs=2, lr=1e-6, batch_size=head.batch_size, seed=head.seed)
    entry = get_model(f"{backbone}_transfer")
    classes = list_image_folder(data / "train" if (data / "train").is_dir() else data)[0]
    spec = entry.spec(labels=classes, image_size=image_size)
    x_tr, y_tr, x_va, y_va, classes = _splits(Path(data), spec, head.val_fraction, head.seed, canvas=augment)
    crop = AugmentConfig(rotation_degrees=15.0, crop_scale=(0.3, 1.0))
    train_xy, transform = train_inputs(
        x_tr, y_tr, spec, course_augmentation(spec.height, spec.width, crop) if augment else None
    )
    val = to_tensors(x_va, y_va, spec)
    # Channels-last activations run the convolutions ~1.5x faster on this CPU (measured, see README).
    transform = _channels_last(transform)
    train_xy = (train_xy[0] if augment else train_xy[0].contiguous(memory_format=torch.channels_last), train_xy[1])
    val = (val[0].contiguous(memory_format=torch.channels_last), val[1])

    check_outputs(Path(out), entry.name)  # before training: a file of another kind in --out is refused
    seed_everything(head.seed)
    model = entry.build(spec, weights).to(memory_format=torch.channels_last)
    phases = []
    for phase, config, frozen in (("head", head, True), ("finetune", finetune, False)):
        if config.epochs <= 0:
            continue
        model.freeze_backbone(frozen)
        history = fit(
            model, train_xy, val, config, transform=transform, progress=progress, desc=f"{entry.name} {phase}"
        )
        phases.append(
            {
                "phase": phase,
                "frozen_backbone": frozen,
                "config": config.to_dict(),
                "history": [vars(h) for h in history],
                "val_accuracy": history[-1].val_accuracy,
            }
        )
    model.freeze_backbone(False)
    val_loss, val_acc = evaluate(model, *val)
    report = {
        "model": entry.name,
        "backbone": backbone,
        "weights": weights,
        "data": str(data),
        "classes": list(classes),
        "train_images": len(y_tr),
        "val_images": len(y_va),
        "augmentation": augment,
        "phases": phases,
        "val": {"loss": val_loss, "accuracy": val_acc},
    }
    if is_main_process():
        save_run(Path(out), entry.name, model, spec, report)
        for p in phases:
            _logger.info(
                f"{entry.name} phase {p['phase']} (backbone {'frozen' if p['frozen_backbone'] else 'trainable'}): "
                f"val accuracy {p['val_accuracy']:.4f}"
            )
        _logger.info(f"{entry.name}: validation accuracy {val_acc:.4f} on {len(y_va)} images; wrote {out}")
    return report


def _channels_last(transform):
    if transform is None:
        return None
    return lambda xb: transform(xb).contiguous(memory_format=torch.channels_last)
