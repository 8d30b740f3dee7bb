"""Training augmentation as the course does it, applied to the decoded pixels *before* the shared preprocessing.

RandomRotation, RandomResizedCrop (aspect 1), RandomHorizontalFlip and ColorJitter
(brightness/contrast), each image of each batch with its own random draw. Kornia does this on the
whole batch at once (torchvision's v2 transforms would need a Python loop per image, 3× slower
here); its draws come from torch's global RNG, so a seeded run augments identically every time.
"""

from __future__ import annotations

from dataclasses import dataclass

import kornia.augmentation as K
import torch


@dataclass(frozen=True)
class AugmentConfig:
    """The course's lab 4 values by default."""

    rotation_degrees: float = 5.0
    crop_scale: tuple[float, float] = (0.9, 1.0)
    hflip_p: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.5


def course_augmentation(height: int, width: int, config: AugmentConfig | None = None):
    """A callable: pixels (N, C, H, W) in 0..255 (uint8 or float) → augmented float pixels in 0..255."""
    config = config or AugmentConfig()
    pipeline = K.AugmentationSequential(
        K.RandomRotation(config.rotation_degrees, p=1.0),
        K.RandomResizedCrop((height, width), scale=config.crop_scale, ratio=(1.0, 1.0), p=1.0),
        K.RandomHorizontalFlip(p=config.hflip_p),
        K.ColorJitter(brightness=config.brightness, contrast=config.contrast, p=1.0),
    )

    def augment(batch: torch.Tensor) -> torch.Tensor:
        if batch.ndim != 4:
            raise ValueError(f"augmentation takes (N, C, H, W) batches, got shape {tuple(batch.shape)}")
        with torch.no_grad():
            return pipeline(batch.float() / 255.0).clamp_(0.0, 1.0) * 255.0

    return augment
