"""Train ``asl_effnet`` (EfficientNet-Lite0, ImageNet weights, grayscale input) for real photos of hands.

``python -m train asl_effnet --out artifacts/asl_effnet`` fine-tunes the whole network on Sign-MNIST with the
photo augmentation (``train.photo_augment``): new backgrounds, a smaller and moved hand, other lighting, blur. The
28×28 rows are resized to the model's input by the runtime's own resize, so training sees what the runtime makes
of a small image. Seeded: the same command gives the same weights on the same machine.

``python -m train asl_effnet --adapt DIR --from artifacts/asl_effnet/asl_effnet.pt --out artifacts/asl_effnet_adapted``
fine-tunes that model on a folder of labelled photos of the user's hands (``DIR/<letter>/<file>`` or
``DIR/<letter>_<anything>.jpg``, the layouts ``edge capture`` writes) and saves ``asl_effnet_adapted``: a model that
saw those photos says so in its name.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from formats.cli import positive_float, positive_int
from runtime.preprocess import resize_image
from runtime.spec import ModelSpec
from train.cards.registry import get_card
from train.checkpoint import load_checkpoint
from train.data.labelled_photos import load_labelled_photos
from train.data.paths import resolve_data_dir
from train.data.sign_mnist import load_sign_mnist, load_sign_mnist_file
from train.errors import TrainError
from train.loop import TrainConfig, evaluate, fit, seed_everything
from train.models.asl_effnet import IMAGE_SIZE
from train.options import add_common_arguments, config_and_grid
from train.photo_augment import PhotoAugment, photo_augmentation
from train.workflow import check_outputs, save_run, to_tensors, train_and_save, train_inputs

_logger = logging.getLogger(__name__)

MODEL = "asl_effnet"
ADAPTED = "asl_effnet_adapted"
# Real photos need no new backgrounds or lighting: only the camera's variation around them, milder.
ADAPT_AUGMENT = PhotoAugment(
    background_p=0.0,
    rotation_degrees=12.0,
    zoom=(0.8, 1.15),
    aspect=0.15,
    translate=0.08,
    hand_gain=(0.8, 1.2),
    background_gain=(1.0, 1.0),
    gamma=(0.8, 1.25),
    contrast=(0.8, 1.2),
    gradient=0.2,
    resample_p=0.2,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # One pass over a 10k subset takes minutes on a 2-core CPU; the defaults are the run docs/asl-models.md reports.
    add_common_arguments(parser, "sign_mnist", MODEL, epochs=1, batch_size=64, models=(MODEL,))
    parser.set_defaults(model=MODEL, lr=1e-3, limit=None)
    parser.add_argument("--train-csv", type=Path, default=None, help="a training CSV in Sign-MNIST format")
    parser.add_argument("--test-csv", type=Path, default=None, help="a test CSV in Sign-MNIST format")
    parser.add_argument("--image-size", type=positive_int(512), default=IMAGE_SIZE, help="model input side")
    parser.add_argument(
        "--weights", default="imagenet", help="imagenet (shipped offline), none (tests) or a .pth state dict"
    )
    parser.add_argument(
        "--adapt",
        type=Path,
        default=None,
        metavar="DIR",
        help="fine-tune --from's model on labelled photos in DIR (DIR/<letter>/*.jpg or <letter>_*.jpg) "
        f"and save {ADAPTED}",
    )
    parser.add_argument("--from", dest="start", type=Path, default=None, help="checkpoint to adapt (with --adapt)")
    parser.add_argument(
        "--adapt-lr",
        type=positive_float(10.0),
        default=1e-3,
        help="learning rate of --adapt's head (default 1e-3; the backbone moves at a tenth of it)",
    )
    parser.add_argument("--adapt-epochs", type=positive_int(10_000), default=15, help="passes over DIR (--adapt)")


def run(args: argparse.Namespace) -> dict:
    if args.adapt is not None:
        if args.start is None:
            raise TrainError(
                "--adapt needs the model to start from: add --from artifacts/asl_effnet/asl_effnet.pt "
                "(train it first with `edge train asl_effnet --out artifacts/asl_effnet`)"
            )
        config = TrainConfig(args.adapt_epochs, args.adapt_lr, min(args.batch_size, 32), args.seed, 0.0)
        return adapt_asl_effnet(args.start, args.adapt, Path(args.out), config, progress=not args.no_progress)
    if args.start is not None:
        raise TrainError("--from is only used with --adapt DIR; drop it, or add --adapt DIR")
    config, grid = config_and_grid(args)
    return train_asl_effnet(
        resolve_data_dir(args.data_dir),
        Path(args.out),
        replace(config, label_smoothing=0.1),
        image_size=args.image_size,
        weights=args.weights,
        limit=args.limit,
        progress=not args.no_progress,
        train_csv=args.train_csv,
        test_csv=args.test_csv,
    )


def resize_rows(images: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Sign-MNIST's 28×28 rows → the model's input size, by the runtime's resize."""
    return np.stack([np.asarray(resize_image(Image.fromarray(row), spec)) for row in images])


def train_asl_effnet(
    data_dir: Path,
    out: Path,
    config: TrainConfig,
    image_size: int = IMAGE_SIZE,
    weights: str = "imagenet",
    limit: int | None = None,
    augment: PhotoAugment | None = None,
    progress: bool = True,
    train_csv: Path | None = None,
    test_csv: Path | None = None,
) -> dict:
    """Fine-tune on (the first ``limit`` rows of a seeded shuffle of) Sign-MNIST train; test once on its test CSV."""
    spec = get_card(MODEL).spec(image_size=image_size)
    train = load_sign_mnist_file(train_csv) if train_csv else load_sign_mnist(data_dir, "train")
    # A seeded shuffle before the limit: the CSV is ordered by signer session, its first rows are not a sample.
    order = np.random.default_rng(config.seed).permutation(len(train.labels))[:limit]
    augment = augment or PhotoAugment()

    def load_test():
        test = load_sign_mnist_file(test_csv) if test_csv else load_sign_mnist(data_dir, "test")
        return resize_rows(test.images, spec), test.labels

    return train_and_save(
        MODEL,
        resize_rows(train.images[order], spec),
        train.labels[order],
        load_test,
        out,
        config,
        augment=photo_augmentation(augment),
        progress=progress,
        info={"data_dir": str(data_dir), "weights": weights, "augmentation": asdict(augment)},
        spec=spec,
        weights=weights,
    )


def adapt_asl_effnet(start: Path, photos: Path, out: Path, config: TrainConfig, progress: bool = True) -> dict:
    """Fine-tune a trained asl_effnet on labelled photos; save it as ``asl_effnet_adapted``."""
    checkpoint = load_checkpoint(start)
    if checkpoint.model_name not in (MODEL, ADAPTED):
        raise TrainError(f"{start}: holds {checkpoint.model_name!r}; --adapt fine-tunes an {MODEL} checkpoint")
    spec = replace(checkpoint.spec, name=ADAPTED)
    data = load_labelled_photos(photos, spec)
    check_outputs(out, ADAPTED)
    model = get_card(ADAPTED).build(spec)
    model.load_state_dict(checkpoint.model.state_dict())
    before = evaluate(model, *to_tensors(data.images, data.labels, spec))[1]
    (x, y), transform = train_inputs(data.images, data.labels, spec, photo_augmentation(ADAPT_AUGMENT))
    seed_everything(config.seed)
    no_val = to_tensors(data.images[:0], data.labels[:0], spec)
    optimizer = torch.optim.Adam(model.param_groups(config.lr))
    history = fit(model, (x, y), no_val, config, transform, progress, desc=ADAPTED, optimizer=optimizer)
    after = evaluate(model, *to_tensors(data.images, data.labels, spec))[1]
    report = {
        "model": ADAPTED,
        "adapted_from": str(start),
        "photos": str(photos),
        "train_images": len(data.labels),
        "per_label": {spec.labels[i]: int(n) for i, n in enumerate(np.bincount(data.labels, minlength=24)) if n},
        "augmentation": asdict(ADAPT_AUGMENT),
        "config": config.to_dict(),
        "history": [vars(h) for h in history],
        "photos_accuracy_before": before,
        "photos_accuracy_after": after,  # on the photos it trained on: a check the run worked, not a score
    }
    save_run(out, ADAPTED, model, spec, report)
    _logger.info(f"{ADAPTED}: {len(data.labels)} photos, accuracy on them {before:.3f} → {after:.3f}; wrote {out}")
    return report
