"""Re-shoot a test image the way a camera would deliver it: a deterministic, seeded renderer (numpy + Pillow).

A 28×28 crop (or any test image) is placed in a camera frame — turned, moved off-centre, zoomed,
pasted on a 4:3, 3:4 or 16:9 frame whose uncovered part is the image's edge colour plus noise —
then lit unevenly, tinted, blurred, given sensor noise, sized to 96–640 pixels and encoded as
JPEG (quality 35–90; PNG when JPEG is not among the perturbations). Each perturbation can be
applied on its own or all together (``ALL``).

Every parameter of a re-shot is drawn from ``numpy.random.default_rng((seed, index))`` in one fixed
order, whichever perturbations are active: image ``index`` gets the same rotation on its own as in
``ALL``, and the same seed always gives the same bytes. Only ever used on a *test* split, to measure
(``calibration.robustness``): never for training or calibration.
"""

from __future__ import annotations

import enum
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter


class Perturbation(str, enum.Enum):
    ROTATION = "rotation"  # ±12°
    OFFSET = "offset"  # the subject's centre up to 6 % of the frame's shorter side away from the frame's centre
    ZOOM = "zoom"  # the subject 0.85–1.15 × the frame's shorter side
    FRAME = "frame"  # a 4:3, 3:4 or 16:9 frame around the square subject, filled with edge colour + noise
    LIGHTING = "lighting"  # a linear brightness gradient across the frame, 30–60 % from one side to the other
    TINT = "tint"  # each colour channel scaled by 0.85–1.15 (white balance)
    BLUR = "blur"  # Gaussian, sigma 1–3 % of the frame's shorter side (defocus, motion)
    NOISE = "noise"  # Gaussian sensor noise, sigma 3–12 grey levels per pixel and channel
    JPEG = "jpeg"  # JPEG quality 35–90 instead of lossless PNG
    RESOLUTION = "resolution"  # the frame's shorter side 96–640 pixels instead of 224


PERTURBATIONS: tuple[Perturbation, ...] = tuple(Perturbation)
ALL: frozenset[Perturbation] = frozenset(Perturbation)
ASPECTS = ((4, 3), (3, 4), (16, 9))
DEFAULT_SIDE = 224  # the frame's shorter side when RESOLUTION is off


@dataclass(frozen=True)
class ShotParams:
    """One re-shot's draws; a perturbation that is off leaves its parameter unused."""

    angle: float  # degrees, clockwise as displayed (y down)
    offset: tuple[float, float]  # (dx, dy) as fractions of the frame's shorter side
    zoom: float
    aspect: tuple[int, int]  # (width, height) ratio
    gradient: float  # brightness change from one side of the frame to the other
    gradient_direction: float  # radians
    tint: tuple[float, float, float]
    blur: float  # sigma as a fraction of the shorter side
    noise: float  # sigma in grey levels
    quality: int
    side: int  # the frame's shorter side in pixels
    noise_seed: int


def draw_params(seed: int, index: int) -> ShotParams:
    """The parameters of re-shot ``index`` under ``seed``: always drawn in this order, all of them."""
    rng = np.random.default_rng((seed, index))
    return ShotParams(
        angle=float(rng.uniform(-12.0, 12.0)),
        offset=(float(rng.uniform(-0.06, 0.06)), float(rng.uniform(-0.06, 0.06))),
        zoom=float(rng.uniform(0.85, 1.15)),
        aspect=ASPECTS[int(rng.integers(len(ASPECTS)))],
        gradient=float(rng.uniform(0.3, 0.6)),
        gradient_direction=float(rng.uniform(0.0, 2 * math.pi)),
        tint=tuple(float(v) for v in rng.uniform(0.85, 1.15, size=3)),
        blur=float(rng.uniform(0.01, 0.03)),
        noise=float(rng.uniform(3.0, 12.0)),
        quality=int(rng.integers(35, 91)),
        side=int(rng.integers(96, 641)),
        noise_seed=int(rng.integers(2**31)),
    )


def edge_colour(image: np.ndarray) -> np.ndarray:
    """The mean colour of the image's one-pixel border, (3,) float: what a plain background around it looks like."""
    rgb = _as_rgb(image).astype(np.float64)
    border = np.concatenate([rgb[0], rgb[-1], rgb[1:-1, 0], rgb[1:-1, -1]])
    return border.mean(axis=0)


def render(image: np.ndarray, active: Iterable[Perturbation], seed: int, index: int) -> tuple[bytes, str]:
    """Re-shoot one uint8 image, (H, W) or (H, W, 3): (encoded bytes, "jpeg" or "png")."""
    active = frozenset(Perturbation(p) for p in active)
    params = draw_params(seed, index)
    noise_rng = np.random.default_rng((seed, index, params.noise_seed))
    picture = _compose(image, active, params, noise_rng)
    grey = image.ndim == 2 and Perturbation.TINT not in active  # a grey source stays one channel unless tinted
    light = Perturbation.LIGHTING in active
    if light or Perturbation.TINT in active:
        gain = np.ones((1, 1, 3), np.float32)
        if Perturbation.TINT in active:
            gain = gain * np.asarray(params.tint, np.float32)
        if light:
            gain = gain * _gradient(picture.size[::-1], params.gradient, params.gradient_direction)[..., None]
        picture = Image.fromarray(_to_uint8(np.asarray(picture, np.float32) * gain))
    if Perturbation.BLUR in active:
        picture = picture.filter(ImageFilter.GaussianBlur(params.blur * min(picture.size)))
    if Perturbation.NOISE in active:
        channels = 1 if grey else 3  # one noise field for a grey picture: its sigma is the drawn one
        noise = noise_rng.standard_normal((*picture.size[::-1], channels), dtype=np.float32) * np.float32(params.noise)
        picture = Image.fromarray(_to_uint8(np.asarray(picture, np.float32) + noise))
    if grey:
        picture = picture.convert("L")
    buffer = io.BytesIO()
    if Perturbation.JPEG in active:
        picture.save(buffer, format="JPEG", quality=params.quality)
        return buffer.getvalue(), "jpeg"
    picture.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue(), "png"


def _compose(image: np.ndarray, active: frozenset[Perturbation], p: ShotParams, rng: np.random.Generator):
    """The framed scene as an RGB image: the subject turned, zoomed and placed on its background."""
    side = p.side if Perturbation.RESOLUTION in active else DEFAULT_SIDE
    aw, ah = p.aspect if Perturbation.FRAME in active else (1, 1)
    width, height = (round(side * aw / ah), side) if aw >= ah else (side, round(side * ah / aw))
    size = side * (p.zoom if Perturbation.ZOOM in active else 1.0)  # the subject's side in frame pixels
    dx, dy = p.offset if Perturbation.OFFSET in active else (0.0, 0.0)
    cx, cy = width / 2 + dx * side, height / 2 + dy * side
    theta = math.radians(p.angle if Perturbation.ROTATION in active else 0.0)
    src_h, src_w = image.shape[:2]
    # Frame pixel (x, y) → source pixel: undo the placement, the rotation and the zoom (PIL's inverse affine).
    kx, ky = src_w / size, src_h / size
    cos, sin = math.cos(theta), math.sin(theta)
    coeffs = (
        kx * cos,
        kx * sin,
        src_w / 2 - kx * (cos * cx + sin * cy),
        -ky * sin,
        ky * cos,
        src_h / 2 - ky * (-sin * cx + cos * cy),
    )
    subject = Image.fromarray(_as_rgb(image)).convert("RGBA")
    subject = subject.transform((width, height), Image.Transform.AFFINE, coeffs, Image.Resampling.BICUBIC)
    grain = rng.standard_normal((height, width, 1), dtype=np.float32) * np.float32(6.0)
    wall = _to_uint8(edge_colour(image).astype(np.float32) + grain)  # a plain, slightly grainy wall
    background = Image.fromarray(np.concatenate([wall, np.full((height, width, 1), 255, np.uint8)], axis=2))
    return Image.alpha_composite(background, subject).convert("RGB")


def _gradient(shape: tuple[int, int], strength: float, direction: float) -> np.ndarray:
    """A light falloff, (H, W) float32: 1 ± strength/2 from one side of the frame to the other along ``direction``."""
    h, w = shape
    xs = (np.arange(w, dtype=np.float32) - w / 2) * np.float32(math.cos(direction) / max(h, w))
    ys = (np.arange(h, dtype=np.float32) - h / 2) * np.float32(math.sin(direction) / max(h, w))
    return np.float32(1.0) + np.float32(strength) * (ys[:, None] + xs[None, :])


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"render takes uint8 (H, W) or (H, W, 3) images, got {image.dtype} {image.shape}")
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)
