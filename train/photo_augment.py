"""Augmentation aimed at the gap between Sign-MNIST and a real photograph of a hand.

Sign-MNIST is 28×28 grayscale crops of a few signers, the hand filling the frame in front of a fairly plain wall.
Real photos differ in background, the hand's size and place in the frame, its aspect (Roboflow's photos are
stretched), rotation, lighting (backlit silhouettes, a hand on black), blur and noise. Each step here draws one of
those per image, on whole batches of grayscale pixels (N, 1, H, W) in 0..255, with torch's global RNG (a seeded
run augments identically):

1. **Background swap.** A soft hand mask from Sign-MNIST's plain backgrounds: pixels far from the median of the
   border are the hand. The background is replaced by a procedural one (flat, gradient, smooth noise, bars),
   no data set needed.
2. **Geometry.** One affine per image: rotation, zoom (mostly *out*: real hands are smaller in the frame), aspect
   stretch and shift; what comes into view is the new background, not a copy of the border.
3. **Lighting.** Hand and background get separate gains (a dark hand on a bright window, a lit hand on black),
   then a gamma, a contrast change and a linear lighting gradient.
4. **Camera.** Gaussian blur, sensor noise, and sometimes a down-and-up resample (a small hand in a big frame).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class PhotoAugment:
    """Ranges of the draws; 0 or a zero-width range turns a step off."""

    background_p: float = 0.8  # share of images whose background is swapped
    mask_threshold: float = 40.0  # |pixel − border median| at which a pixel counts as hand (0..255)
    rotation_degrees: float = 20.0
    zoom: tuple[float, float] = (0.55, 1.15)  # < 1 shrinks the hand in the frame
    aspect: float = 0.2  # log-uniform stretch of one axis up to ×(1 + aspect)
    translate: float = 0.15  # fraction of the side
    hand_gain: tuple[float, float] = (0.25, 1.4)
    background_gain: tuple[float, float] = (0.0, 1.6)
    gamma: tuple[float, float] = (0.6, 1.6)
    contrast: tuple[float, float] = (0.6, 1.3)
    gradient: float = 0.4  # largest lighting gradient across the frame, as a gain
    blur_p: float = 0.4
    blur_sigma: tuple[float, float] = (0.3, 1.8)  # pixels of the training resolution
    resample_p: float = 0.25  # share of images shrunk to 1/4..1/2 size and back (a small, soft hand)
    noise_std: float = 6.0  # 0..255 units, half of the images


def _uniform(n: int, low: float, high: float) -> torch.Tensor:
    return torch.rand(n) * (high - low) + low


def hand_mask(pixels: torch.Tensor, threshold: float) -> torch.Tensor:
    """Soft mask (N, 1, H, W) in 0..1: 1 where a pixel departs from the background.

    The background is a plane fitted (least squares) to the frame's border pixels, so a lit wall's gradient
    still counts as wall.
    """
    n, _, h, w = pixels.shape
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    border = torch.zeros(h, w, dtype=torch.bool)
    border[:2], border[-2:], border[:, :2], border[:, -2:] = True, True, True, True
    design = torch.stack([torch.ones_like(xs), xs, ys], -1)  # (H, W, 3)
    a = design[border]  # (B, 3)
    b = pixels[:, 0][:, border]  # (N, B)
    coef = torch.linalg.lstsq(a.expand(n, -1, -1), b.unsqueeze(-1)).solution  # (N, 3, 1)
    background = (design.view(1, h * w, 3) @ coef).view(n, 1, h, w)
    mask = ((pixels - background).abs() / threshold).clamp(0, 1)
    return F.avg_pool2d(mask, 3, stride=1, padding=1, count_include_pad=False)  # soften the edge a little


def procedural_backgrounds(n: int, height: int, width: int) -> torch.Tensor:
    """(N, 1, H, W) in 0..255: a flat tone, a gradient, smooth noise (a room out of focus) or bars (furniture)."""
    kind = torch.randint(0, 4, (n,))
    base = _uniform(n, 0, 255).view(-1, 1, 1, 1).expand(n, 1, height, width).clone()
    ys = torch.linspace(-1, 1, height).view(1, 1, -1, 1)
    xs = torch.linspace(-1, 1, width).view(1, 1, 1, -1)
    angle = _uniform(n, 0, 2 * math.pi).view(-1, 1, 1, 1)
    ramp = (xs * torch.cos(angle) + ys * torch.sin(angle)) * _uniform(n, 20, 120).view(-1, 1, 1, 1)
    cells = torch.randint(3, 9, (1,)).item()
    noise = F.interpolate(torch.rand(n, 1, cells, cells) * 200 - 100, (height, width), mode="bicubic")
    bars = ((xs * _uniform(n, 2, 8).view(-1, 1, 1, 1) + angle).sin().sign()) * _uniform(n, 10, 60).view(-1, 1, 1, 1)
    layers = [torch.zeros(n, 1, height, width), ramp, noise, bars]
    extra = torch.cat([layer.expand(n, 1, height, width) for layer in layers], 1)
    chosen = extra[torch.arange(n), kind].unsqueeze(1)
    return (base + chosen).clamp(0, 255)


def _affine(n: int, config: PhotoAugment) -> torch.Tensor:
    """(N, 2, 3) sampling matrices for ``affine_grid``: output pixel → input pixel (so zoom < 1 → scale > 1)."""
    theta = torch.deg2rad(_uniform(n, -config.rotation_degrees, config.rotation_degrees))
    zoom = _uniform(n, *config.zoom)
    stretch = torch.exp(_uniform(n, -1, 1) * math.log1p(config.aspect))
    sx, sy = 1 / (zoom * stretch.sqrt()), 1 / (zoom / stretch.sqrt())
    cos, sin = torch.cos(theta), torch.sin(theta)
    shift = _uniform(2 * n, -2 * config.translate, 2 * config.translate).view(n, 2)
    row0 = torch.stack([cos * sx, -sin * sx, shift[:, 0]], 1)
    row1 = torch.stack([sin * sy, cos * sy, shift[:, 1]], 1)
    return torch.stack([row0, row1], 1)


def _blur(pixels: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur (separable, 9 taps) with its own sigma."""
    n = pixels.shape[0]
    taps = torch.arange(-4, 5, dtype=pixels.dtype)
    kernel = torch.exp(-(taps.view(1, -1) ** 2) / (2 * sigma.view(-1, 1) ** 2))
    kernel = kernel / kernel.sum(1, keepdim=True)
    x = pixels.transpose(0, 1)  # (1, N, H, W): one group per image
    x = F.conv2d(F.pad(x, (4, 4, 0, 0), mode="replicate"), kernel.view(n, 1, 1, 9), groups=n)
    x = F.conv2d(F.pad(x, (0, 0, 4, 4), mode="replicate"), kernel.view(n, 1, 9, 1), groups=n)
    return x.transpose(0, 1)


def _where(p: float, n: int) -> torch.Tensor:
    return (torch.rand(n) < p).view(-1, 1, 1, 1)


def photo_augmentation(config: PhotoAugment | None = None):
    """A callable: grayscale pixels (N, 1, H, W) in 0..255 → augmented float pixels in 0..255."""
    config = config or PhotoAugment()

    def augment(batch: torch.Tensor) -> torch.Tensor:
        if batch.ndim != 4 or batch.shape[1] != 1:
            raise ValueError(f"photo augmentation takes (N, 1, H, W) grayscale batches, got {tuple(batch.shape)}")
        with torch.no_grad():
            return _augment(batch.float(), config)

    return augment


def _augment(x: torch.Tensor, c: PhotoAugment) -> torch.Tensor:
    n, _, h, w = x.shape
    swap = _where(c.background_p, n).float()
    mask = hand_mask(x, c.mask_threshold)
    mask = swap * mask + (1 - swap)  # unswapped images keep their whole frame as "hand"
    grid = F.affine_grid(_affine(n, c), [n, 2, h, w], align_corners=False)
    moved = F.grid_sample(torch.cat([x, mask], 1), grid, align_corners=False, padding_mode="zeros")
    x, mask = moved[:, :1], moved[:, 1:]
    inside = F.grid_sample(torch.ones(n, 1, h, w), grid, align_corners=False, padding_mode="zeros")
    background = procedural_backgrounds(n, h, w)
    # Where no image came into view of an unswapped frame, still show a background rather than black.
    mask = torch.where(swap.bool(), mask, mask * inside)
    hand = x * _uniform(n, *c.hand_gain).view(-1, 1, 1, 1)
    background = background * _uniform(n, *c.background_gain).view(-1, 1, 1, 1)
    x = (mask * hand + (1 - mask) * background).clamp(0, 255)
    x = 255 * (x / 255).pow(_uniform(n, *c.gamma).view(-1, 1, 1, 1))
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * _uniform(n, *c.contrast).view(-1, 1, 1, 1) + mean
    if c.gradient:
        ys = torch.linspace(-1, 1, h).view(1, 1, -1, 1)
        xs = torch.linspace(-1, 1, w).view(1, 1, 1, -1)
        angle = _uniform(n, 0, 2 * math.pi).view(-1, 1, 1, 1)
        x = x * (1 + _uniform(n, 0, c.gradient).view(-1, 1, 1, 1) * (xs * angle.cos() + ys * angle.sin()))
    if c.resample_p:
        factor = float(_uniform(1, 0.25, 0.5))
        small = F.interpolate(x, scale_factor=factor, mode="bilinear", antialias=True)
        x = torch.where(_where(c.resample_p, n), F.interpolate(small, (h, w), mode="bilinear"), x)
    if c.blur_p:
        x = torch.where(_where(c.blur_p, n), _blur(x, _uniform(n, *c.blur_sigma)), x)
    if c.noise_std:
        x = x + torch.randn_like(x) * c.noise_std * _where(0.5, n)
    return x.clamp(0, 255)
