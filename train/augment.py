"""Training augmentation as the course does it, applied to the decoded pixels *before* the shared preprocessing.

RandomRotation, RandomResizedCrop (aspect 1), RandomHorizontalFlip and ColorJitter
(brightness/contrast), each image of each batch with its own random draw. Kornia does this on the
whole batch at once (torchvision's v2 transforms would need a Python loop per image, 3× slower
here); its draws come from torch's global RNG, so a seeded run augments identically every time.

``stroke_p`` thickens or thins the strokes of that share of the images (a marker, a fine pen: what is left of the
pen after the digit deploy path in ``runtime.preprocess`` has framed a photo of paper).

``CAMERA`` adds what a camera does to a 28×28 crop (see ``calibration.robustness``, which measures it
on re-shots of the test split): zoom in and out with the border pixels filling in (as a hand on a plain
background), translation, perspective, a lighting gradient, blur and sensor noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import kornia.augmentation as K
import torch


@dataclass(frozen=True)
class AugmentConfig:
    """The course's lab 4 values by default; the camera fields (translate onwards) are off by default."""

    rotation_degrees: float = 5.0
    crop_scale: tuple[float, float] = (0.9, 1.0)
    hflip_p: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.5
    translate: float = 0.0  # fraction of the side; with zoom, one RandomAffine replaces the course's rotation
    zoom: tuple[float, float] | None = None  # RandomAffine scale: < 1 shrinks the subject, the border fills in
    perspective: float = 0.0  # distortion scale, half of the images (kornia fills its corners black, not border)
    gradient: float = 0.0  # largest gain of a linear lighting gradient (half of the images)
    blur_p: float = 0.0  # share of images blurred (Gaussian, sigma 0.1–1.2 pixels of the 28×28 input)
    noise_std: float = 0.0  # Gaussian sensor noise in 0..1 units (half of the images)
    stroke_p: float = 0.0  # share of images whose strokes are thickened (half) or thinned (half), before the rest
    clean_p: float = 0.0  # share of images of each batch passed through unaugmented (the clean distribution)


# What a camera does to a hand: the renderer's ranges (±12°, ±6 %, zoom 0.85–1.15) widened a little.
CAMERA = AugmentConfig(
    rotation_degrees=15.0,
    crop_scale=(1.0, 1.0),
    hflip_p=0.0,
    brightness=0.3,
    contrast=0.5,
    translate=0.1,
    zoom=(0.75, 1.25),
    perspective=0.25,
    gradient=0.3,
    blur_p=0.4,
    noise_std=0.04,
)


def _pipeline(height: int, width: int, config: AugmentConfig) -> K.AugmentationSequential:
    steps: list[K.AugmentationBase2D] = []
    if config.translate or config.zoom:
        # Border padding: what comes into view around a shrunk or moved hand is more of its background.
        t = (config.translate, config.translate)
        steps.append(K.RandomAffine(config.rotation_degrees, t, config.zoom, padding_mode="border", p=1.0))
    else:
        steps.append(K.RandomRotation(config.rotation_degrees, p=1.0))
    if config.crop_scale != (1.0, 1.0):
        steps.append(K.RandomResizedCrop((height, width), scale=config.crop_scale, ratio=(1.0, 1.0), p=1.0))
    if config.hflip_p:
        steps.append(K.RandomHorizontalFlip(p=config.hflip_p))
    if config.perspective:
        steps.append(K.RandomPerspective(config.perspective, p=0.5))
    steps.append(K.ColorJitter(brightness=config.brightness, contrast=config.contrast, p=1.0))
    if config.gradient:
        steps.append(K.RandomLinearIllumination(gain=(0.01, config.gradient), p=0.5))
    if config.blur_p:
        steps.append(K.RandomGaussianBlur((5, 5), (0.1, 1.2), p=config.blur_p))
    if config.noise_std:
        steps.append(K.RandomGaussianNoise(std=config.noise_std, p=0.5))
    return K.AugmentationSequential(*steps)


_THICKER = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])  # a 3×3 cross: about +1 px a side
_THINNER = torch.ones(2, 2)  # a 2×2 square: about −1 px


def change_strokes(x: torch.Tensor, share: float) -> torch.Tensor:
    """Grey dilation of ``share``/2 of the images and erosion of another ``share``/2 (light strokes on dark)."""
    from kornia.morphology import dilation, erosion

    draw = torch.rand(len(x))
    thicker, thinner = draw < share / 2, (draw >= share / 2) & (draw < share)
    out = x.clone()
    if thicker.any():
        out[thicker] = dilation(x[thicker], _THICKER)
    if thinner.any():
        out[thinner] = erosion(x[thinner], _THINNER)
    return out


def course_augmentation(height: int, width: int, config: AugmentConfig | None = None):
    """A callable: pixels (N, C, H, W) in 0..255 (uint8 or float) → augmented float pixels in 0..255."""
    pipeline = _pipeline(height, width, config or AugmentConfig())

    stroke_p = (config or AugmentConfig()).stroke_p
    clean_p = (config or AugmentConfig()).clean_p

    def augment(batch: torch.Tensor) -> torch.Tensor:
        if batch.ndim != 4:
            raise ValueError(f"augmentation takes (N, C, H, W) batches, got shape {tuple(batch.shape)}")
        with torch.no_grad():
            x = batch.float() / 255.0
            if not clean_p:
                return _augment(x).clamp_(0.0, 1.0) * 255.0
            drawn = torch.rand(len(x)) >= clean_p  # the others stay as they are (same size: no crop with clean_p)
            if drawn.any():
                x[drawn] = _augment(x[drawn]).clamp_(0.0, 1.0)
            return x * 255.0

    def _augment(x: torch.Tensor) -> torch.Tensor:
        return pipeline(change_strokes(x, stroke_p) if stroke_p else x)

    return augment
