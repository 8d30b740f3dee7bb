"""The one deterministic preprocessing implementation (numpy + Pillow), driven by a ModelSpec.

decode → colour mode → deploy steps (polarity, background, stroke, framing; grayscale specs that ask for them) →
resize → scale/normalize → layout → batch. Training's evaluation transform, calibration, parity tests and
the runtime all call these functions (``prepare_pixels`` brings a data set's decoded arrays to the model's
pixels the same way); training augmentation happens on those pixels, never instead of them.

Inputs may be image files (PNG, JPEG, BMP, TIFF, GIF, WebP), ``PIL.Image`` objects or numpy
arrays shaped (H, W) or (H, W, C) with C in {1, 3, 4}, uint8 (0–255), uint16 (0–65535) or float
(already in 0–255).
"""

# Over 400 lines: the design keeps exactly one preprocessing module (DESIGN.md, issue 27 asks the digit deploy
# steps to live here too); a split would put half of the one path the spec drives in another file.

from __future__ import annotations

import io
import os
import struct
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from formats.errors import InputError
from formats.files import open_regular
from runtime.spec import (
    Background,
    ColorMode,
    Framing,
    InputDType,
    InputKind,
    Interpolation,
    ModelSpec,
    Polarity,
    ResizePolicy,
    Stroke,
)

ImageInput = str | os.PathLike | Image.Image | np.ndarray

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp"})

_PIL_RESAMPLE = {
    Interpolation.NEAREST: Image.Resampling.NEAREST,
    Interpolation.BILINEAR: Image.Resampling.BILINEAR,
    Interpolation.BICUBIC: Image.Resampling.BICUBIC,
    Interpolation.LANCZOS: Image.Resampling.LANCZOS,
    Interpolation.BOX: Image.Resampling.BOX,
}


# --- decoding ----------------------------------------------------------------------------


def load_image(path: str | os.PathLike, draft_side: int | None = None) -> Image.Image:
    """Decode an image file fully; EXIF orientation applied, first frame of an animation.

    Only a regular file is opened (a FIFO or device is refused, never read: ``formats.files``). With
    ``draft_side``, a JPEG at least twice that size on both sides is decoded at 1/2, 1/4 or 1/8 scale
    (Pillow's ``draft``: the DCT does the reduction), never below ``draft_side``: an 88-megapixel photo for a
    224-pixel model then needs a few MB instead of hundreds. Raises InputError naming the file for a missing
    path, a folder, an unreadable file, a non-image, a truncated file, or a decompression bomb (Pillow's
    MAX_IMAGE_PIXELS).
    """
    path = Path(path)
    with open_regular(path, "an image file", InputError) as fh:
        return _decode(fh, str(path), draft_side)


def decode_image(data: bytes, source: str = "image bytes", draft_side: int | None = None) -> Image.Image:
    """Decode an encoded image held in memory (PNG, JPEG, … as a camera or an HTTP client sends it).

    The same checks as ``load_image``; ``source`` names the input in the error message.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(f"{source}: expected encoded image bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise InputError(f"{source}: empty (0 bytes); expected an encoded PNG, JPEG, BMP, TIFF, GIF or WebP image")
    return _decode(io.BytesIO(data), source, draft_side)


def _decode(fp, source: str, draft_side: int | None = None) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as img:
                if draft_side and img.format == "JPEG":
                    img.draft(None, (draft_side, draft_side))
                img.seek(0)
                img.load()
                image = ImageOps.exif_transpose(img) if img.getexif() else img.copy()
    except UnidentifiedImageError:
        audio = _audio_kind(fp)
        if audio:
            raise InputError(
                f"{source}: is an audio file ({audio}), not an image; this reads images (PNG, JPEG, BMP, TIFF, GIF, "
                "WebP) and videos (pictures, not sound): give a photo or a video file"
            ) from None
        raise InputError(f"{source}: not a readable image; expected PNG, JPEG, BMP, TIFF, GIF or WebP") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"{source}: image too large to decode safely ({exc})") from None
    except MemoryError:
        raise InputError(f"{source}: not enough memory to decode this image; resize it first") from None
    except InputError:
        raise
    except (OSError, SyntaxError, ValueError, TypeError, IndexError, struct.error, EOFError) as exc:
        # Pillow's plugins raise all of these for damaged files; each is this one input's problem.
        raise InputError(f"{source}: image is truncated or corrupt ({exc})") from None
    return image


# The first bytes of the audio files people mistake for media we read (a voice memo, a song).
_AUDIO_MAGIC = (
    (lambda h: h[:4] == b"RIFF" and h[8:12] == b"WAVE", "WAV"),
    (lambda h: h[:3] == b"ID3" or (len(h) > 1 and h[0] == 0xFF and h[1] & 0xE0 == 0xE0 and h[1] & 0x06), "MP3"),
    (lambda h: h[:4] == b"fLaC", "FLAC"),
    (lambda h: h[:4] == b"OggS", "Ogg"),
    (lambda h: h[4:8] == b"ftyp" and h[8:11] in (b"M4A", b"M4B"), "M4A/AAC"),
    (lambda h: h[:4] == b"FORM" and h[8:12] in (b"AIFF", b"AIFC"), "AIFF"),
)


def _audio_kind(fp) -> str | None:
    """The audio format of an undecodable input, from its first bytes; None when it is not audio we know."""
    try:
        fp.seek(0)
        head = fp.read(16)
    except (OSError, AttributeError, ValueError):
        return None
    return next((name for test, name in _AUDIO_MAGIC if test(head)), None)


def to_color_mode(image: Image.Image, mode: ColorMode) -> Image.Image:
    """Convert any Pillow mode to 8-bit ``L`` or ``RGB``.

    16- and 32-bit integer images keep their top 8 bits (a 16-bit PNG's full range maps to
    0–255 rather than clipping); float images are clipped to 0–255; transparency is composited
    onto black.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        wide = np.asarray(image, dtype=np.int64)
        image = Image.fromarray((np.clip(wide, 0, 65535) >> 8).astype(np.uint8), mode="L")
    elif image.mode == "F":
        image = Image.fromarray(_float_to_uint8(np.asarray(image, dtype=np.float64)), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode != mode.value:
        image = image.convert(mode.value)
    return image


def _float_to_uint8(values: np.ndarray) -> np.ndarray:
    """A float image (TIFF mode ``F``) → 8 bit. Values all within 0..1 are taken as 0..1 intensities (how
    scientific and HDR tools write float images; casting them would give a black image), otherwise as 0..255.
    NaN or Inf pixels are refused: casting them to 0 would silently change the picture."""
    if not np.all(np.isfinite(values)):
        bad = int(np.count_nonzero(~np.isfinite(values)))
        raise InputError(f"{bad} pixel(s) are NaN or Inf; expected finite intensities")
    if values.size and values.min() >= 0.0 and values.max() <= 1.0:
        values = values * 255.0
    return np.rint(np.clip(values, 0, 255)).astype(np.uint8)


def resize_image(image: Image.Image, spec: ModelSpec) -> Image.Image:
    target = (spec.width, spec.height)
    resample = _PIL_RESAMPLE[spec.interpolation]
    if spec.resize is ResizePolicy.STRETCH:
        return image if image.size == target else image.resize(target, resample)
    # torchvision's Resize(int) + CenterCrop: shorter side to resize_size, then crop the centre.
    w, h = image.size
    short = spec.resize_size
    if w <= h:
        new_w, new_h = short, int(short * h / w)
    else:
        new_w, new_h = int(short * w / h), short
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), resample)
    left = int(round((new_w - spec.width) / 2.0))
    top = int(round((new_h - spec.height) / 2.0))
    return image.crop((left, top, left + spec.width, top + spec.height))


# --- numbers -----------------------------------------------------------------------------


def normalize(pixels: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Pixels shaped (..., H, W) or (..., H, W, C) in 0–255 → the model's layout (..., C, H, W).

    Works on one image or a stack of them with the same arithmetic, in float32:
    ``(pixel * scale - mean[c]) / std[c]``. For a spec whose graph takes uint8 the pixels are
    only re-laid out.
    """
    if pixels.ndim >= 3 and pixels.shape[-1] == spec.channels and _looks_channels_last(pixels, spec):
        chw = np.moveaxis(pixels, -1, -3)
    else:
        chw = pixels[..., None, :, :]
    if spec.input_dtype is InputDType.UINT8:
        return np.ascontiguousarray(chw, dtype=np.uint8)
    x = chw.astype(np.float32) * np.float32(spec.scale)
    mean = np.asarray(spec.mean, dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(spec.std, dtype=np.float32).reshape(-1, 1, 1)
    return np.ascontiguousarray((x - mean) / std, dtype=np.float32)


def _looks_channels_last(pixels: np.ndarray, spec: ModelSpec) -> bool:
    return pixels.shape[-3:-1] == (spec.height, spec.width)


def image_to_pixels(image: Image.Image, spec: ModelSpec) -> np.ndarray:
    """A Pillow image → the model's uint8 pixels (H, W) or (H, W, 3) in the spec's colour mode."""
    image = to_color_mode(image, spec.color_mode)
    if spec.has_deploy_steps:
        image = deploy_steps(image, spec)
        if spec.framing is Framing.CENTER_OF_MASS:
            return np.asarray(image, dtype=np.uint8)
    return np.asarray(resize_image(image, spec), dtype=np.uint8)


def prepare_pixels(images: np.ndarray, spec: ModelSpec, chunk: int = 2048) -> np.ndarray:
    """A data set's decoded uint8 images (N, H, W) or (N, H, W, C) → the model's pixels, the same as
    ``image_to_pixels`` gives for each one. Without deploy steps, images already at the model's size are returned
    as they are (the resize would not change them); grayscale stacks no larger than ``WORK_SIDE`` go through the
    deploy steps a chunk at a time (the same arithmetic as one image, vectorised: 60,000 MNIST digits in seconds)."""
    if not spec.has_deploy_steps and images.shape[1:3] == (spec.height, spec.width):
        return images
    if spec.has_deploy_steps and images.ndim == 3 and images.dtype == np.uint8 and max(images.shape[1:]) <= WORK_SIDE:
        parts = [deploy_batch(images[i : i + chunk], spec) for i in range(0, len(images), chunk)]
        if spec.framing is Framing.CENTER_OF_MASS:
            return np.concatenate(parts)
        return np.stack([np.asarray(resize_image(Image.fromarray(p), spec)) for part in parts for p in part])
    return np.stack([image_to_pixels(array_to_image(image), spec) for image in images])


# --- deploy steps: a camera photo of ink on paper → what an MNIST-style model was trained on ---------------

WORK_SIDE = 128  # photos are reduced to this longer side first: enough for a 28×28 model, cheap to filter
COARSE_SIDE = 32  # the copy the polarity step reads the ink's extremes from (averages away sensor noise)
BORDER_SHARE = 0.05  # the ring whose median is the background
OPENING_SHARE = 0.25  # the background opening's window, a share of the shorter side: wider than any stroke
INK_PERCENTILE = 99.5  # the ink level: a digit covers a few per cent of a photo, at least
INK_FLOOR = 0.15  # after flattening, what is under this share of the ink level is background …
MIN_INK = 8.0  # an ink level under this many grey levels is no ink: a blank sheet stays black, not stretched noise
NOISE_SIGMAS = 5.0  # … and what is within this many noise sigmas of the background's median (grain, sensor noise)
BOX_TRIM = 0.005  # the ink's bounding box leaves out this share of the ink pixels at each end (specks)
# Stroke widths as a share of the ink's bounding box (its longer side), measured as 2 × area / perimeter of the
# pixels above half the ink level. MNIST's framed training digits (3,000): median 0.092 (1.8 px of the 20-pixel
# box), 5th percentile 0.060, 95th 0.140. A stroke outside [STROKE_MIN, STROKE_MAX] is brought to STROKE_TARGET;
# one inside is left alone, so MNIST's own digits barely change.
STROKE_MIN = 0.05
STROKE_TARGET = 0.09
STROKE_MAX = 0.18


def deploy_steps(image: Image.Image, spec: ModelSpec) -> Image.Image:
    """Polarity, background, stroke and framing as the spec says, on an ``L`` image. With ``CENTER_OF_MASS`` framing the
    result is at the model's size; otherwise the resize policy follows."""
    if max(image.size) > WORK_SIDE:
        factor = WORK_SIDE / max(image.size)
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        image = image.resize(size, Image.Resampling.BOX)
    return Image.fromarray(deploy_batch(np.asarray(image, dtype=np.uint8)[None], spec)[0], mode="L")


def deploy_batch(stack: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """The deploy steps on a stack of same-size ``L`` images (N, H, W) uint8 → uint8, (N, height, width) when
    framed. One image is a stack of one: the runtime and the data sets share this arithmetic."""
    pixels = stack.astype(np.float32)
    if spec.polarity is Polarity.INVERT:
        pixels = 255.0 - pixels
    elif spec.polarity is Polarity.LIGHT_ON_DARK:
        dark = ink_is_dark(pixels)
        pixels[dark] = 255.0 - pixels[dark]
    if spec.background is Background.FLATTEN:
        pixels = flatten_background(pixels)
    if spec.framing is Framing.CENTER_OF_MASS:
        if spec.stroke is Stroke.NORMALIZE:
            pixels = [normalize_stroke(p) for p in pixels]  # the sizes may change: framed one at a time
        pixels = np.stack([frame_center_of_mass(p, spec.frame_box, spec.height, spec.width) for p in pixels])
    return np.rint(np.clip(pixels, 0, 255)).astype(np.uint8)


def ink_is_dark(pixels: np.ndarray) -> np.ndarray:
    """(N,) whether each image's strokes are darker than its background: the border's median is the background,
    and the extreme of a coarse copy farther from it is the ink (an MNIST digit: black border, bright extreme)."""
    n, h, w = pixels.shape
    ring = max(1, round(BORDER_SHARE * min(h, w)))
    border = np.concatenate(
        [pixels[:, :ring].reshape(n, -1), pixels[:, -ring:].reshape(n, -1)]
        + [pixels[:, :, :ring].reshape(n, -1), pixels[:, :, -ring:].reshape(n, -1)],
        axis=1,
    )
    background = np.median(border, axis=1)
    step = -(-max(h, w) // COARSE_SIDE)  # block means: sensor noise averages out, a stroke stays
    coarse = pixels[:, : h - h % step or h, : w - w % step or w]
    if step > 1:
        coarse = coarse.reshape(n, coarse.shape[1] // step, step, coarse.shape[2] // step, step).mean(axis=(2, 4))
    flat = coarse.reshape(n, -1)
    return background - flat.min(axis=1) > flat.max(axis=1) - background


def flatten_background(pixels: np.ndarray) -> np.ndarray:
    """Light strokes on a dark background (N, H, W) float 0..255 → the illumination removed, contrast stretched.

    The background is a morphological opening (min then max filter) wider than a stroke, blurred: shadows,
    gradients and the paper's tone, without the ink. It is subtracted; then what is under ``INK_FLOOR`` of the
    ink level (a high percentile), or within the noise of the background, goes to 0 and the ink level to 255.
    An MNIST digit (black background, ink at 255) comes through unchanged but for its faintest edge pixels.
    """
    n = len(pixels)
    size = max(3, round(OPENING_SHARE * min(pixels.shape[1:])) | 1)
    # Opened on a copy extended by a window at each edge, so a shading gradient reaching the edge is followed
    # to it (opened within the image alone, the background would fall short there and leave a bright band).
    wide = np.pad(pixels, [(0, 0), (size, size), (size, size)], mode="edge")
    opened = _rank_filter(_rank_filter(wide, size, np.min), size, np.max)[:, size:-size, size:-size]
    background = _blur(opened, size / 4)
    ink = np.clip(pixels - background, 0, None).reshape(n, -1)
    level = np.percentile(ink, INK_PERCENTILE, axis=1)
    median = np.median(ink, axis=1)
    noise = median + NOISE_SIGMAS * 1.4826 * np.median(np.abs(ink - median[:, None]), axis=1)
    floor = np.minimum(np.maximum(INK_FLOOR * level, noise), 0.5 * level)
    span = np.where(level >= MIN_INK, level - floor, 1.0)
    out = np.clip((ink - floor[:, None]) / span[:, None], 0, 1) * 255.0
    out[level < MIN_INK] = 0.0
    return out.reshape(pixels.shape).astype(np.float32)


def _rank_filter(pixels: np.ndarray, size: int, reduce) -> np.ndarray:
    """A square min or max filter (separable), edges extended: (N, H, W) → (N, H, W). An even ``size`` reaches
    one pixel farther up and left than down and right."""
    before, after = size // 2, (size - 1) // 2
    for axis in (1, 2):
        pad = [(0, 0)] + [(before, after) if a == axis else (0, 0) for a in (1, 2)]
        padded = np.pad(pixels, pad, mode="edge")
        pixels = reduce(np.lib.stride_tricks.sliding_window_view(padded, size, axis=axis), axis=-1)
    return pixels


def _blur(pixels: np.ndarray, sigma: float) -> np.ndarray:
    """A separable Gaussian blur (radius 3 sigma), edges extended: (N, H, W) → (N, H, W)."""
    radius = max(1, int(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).astype(np.float32)
    taps /= taps.sum()
    for axis in (1, 2):
        padded = np.pad(pixels, [(0, 0)] + [(radius, radius) if a == axis else (0, 0) for a in (1, 2)], mode="edge")
        pixels = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1, axis=axis) @ taps
    return pixels


def stroke_share(pixels: np.ndarray) -> float:
    """The strokes' width as a share of the ink's bounding box (longer side), for one image (H, W) of light
    strokes on a black background: 2 × area / perimeter of the pixels above half the brightest (a long stroke of
    width w has area w·L and perimeter about 2L), over the box ``frame_center_of_mass`` fits. 0 for no ink."""
    if pixels.max() <= 0:
        return 0.0
    mask = np.pad(pixels > 0.5 * pixels.max(), 1).astype(np.int8)
    perimeter = np.abs(np.diff(mask, axis=0)).sum() + np.abs(np.diff(mask, axis=1)).sum()
    ink = pixels > 0
    top, bottom = _trimmed_span(ink.sum(axis=1))
    left, right = _trimmed_span(ink.sum(axis=0))
    side = max(bottom - top + 1, right - left + 1)
    return float(2.0 * mask.sum() / max(perimeter, 1) / side)


def normalize_stroke(pixels: np.ndarray) -> np.ndarray:
    """One image (H, W), light strokes on black → strokes of MNIST's width relative to the ink's box.

    A stroke of width w in a box of side B reaches the share r = STROKE_TARGET once dilated by d pixels, which
    widens both: (w + d) / (B + d) = r, so d = (r·B − w) / (1 − r); eroding a thick one is the same with d < 0.
    The image is padded by d first, so a dilated digit is never clipped at the edge. Strokes within MNIST's
    range [STROKE_MIN, STROKE_MAX] come back unchanged.
    """
    share = stroke_share(pixels)
    if share == 0.0 or STROKE_MIN <= share <= STROKE_MAX:
        return pixels
    ink = pixels > 0
    top, bottom = _trimmed_span(ink.sum(axis=1))
    left, right = _trimmed_span(ink.sum(axis=0))
    side = max(bottom - top + 1, right - left + 1)
    width = share * side
    d = int(round((STROKE_TARGET * side - width) / (1.0 - STROKE_TARGET)))
    if d > 0:  # only the strokes grow: faint residue of grid lines or texture (under half the ink) is dropped
        strokes = np.where(pixels > 0.5 * pixels.max(), pixels, 0.0)
        return _rank_filter(np.pad(strokes, d)[None], d + 1, np.max)[0]
    if d < 0:
        return _rank_filter(pixels[None], 1 - d, np.min)[0]
    return pixels


def frame_center_of_mass(pixels: np.ndarray, box: int, height: int, width: int) -> np.ndarray:
    """MNIST's framing of one image (H, W): the ink's bounding box scaled (aspect kept) to fit a ``box``-pixel
    square, placed in a height × width field with its centre of mass at the centre. Empty stays empty."""
    out = np.zeros((height, width), dtype=np.float32)
    mask = pixels > 0
    if not mask.any():
        return out
    top, bottom = _trimmed_span(mask.sum(axis=1))
    left, right = _trimmed_span(mask.sum(axis=0))
    crop = pixels[top : bottom + 1, left : right + 1]
    h, w = crop.shape
    factor = box / max(h, w)
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    if size != (w, h):
        crop = np.clip(np.asarray(Image.fromarray(crop, mode="F").resize(size, Image.Resampling.BILINEAR)), 0, 255)
    mass = crop.sum()
    if mass <= 0:
        return out
    cy = (crop.sum(axis=1) * np.arange(crop.shape[0])).sum() / mass
    cx = (crop.sum(axis=0) * np.arange(crop.shape[1])).sum() / mass
    _paste(out, crop, int(round(height / 2 - cy)), int(round(width / 2 - cx)))  # MNIST: centre of mass at (14, 14)
    return out


def _trimmed_span(counts: np.ndarray) -> tuple[int, int]:
    """First and last index of a profile of ink-pixel counts, ``BOX_TRIM`` of the ink left out at each end."""
    total = counts.sum()
    if total == 0:
        return 0, len(counts) - 1
    cumulative = np.cumsum(counts)
    first = int(np.searchsorted(cumulative, BOX_TRIM * total, side="right"))
    last = int(np.searchsorted(cumulative, (1 - BOX_TRIM) * total, side="left"))
    return min(first, last), max(first, last)


def _paste(field: np.ndarray, patch: np.ndarray, y0: int, x0: int) -> None:
    """``field[y0:, x0:] = patch``, clipped to the field (a shift past the edge loses what falls outside)."""
    h, w = patch.shape
    fy0, fx0 = max(0, y0), max(0, x0)
    fy1, fx1 = min(field.shape[0], y0 + h), min(field.shape[1], x0 + w)
    if fy1 > fy0 and fx1 > fx0:
        field[fy0:fy1, fx0:fx1] = patch[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]


def array_to_image(array: np.ndarray, source: str = "array") -> Image.Image:
    """Wrap a raw (H, W) / (H, W, C) array as a Pillow image, validating shape and values."""
    if not isinstance(array, np.ndarray):
        raise InputError(f"{source}: expected a numpy array, got {type(array).__name__}")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise InputError(
            f"{source}: array shape {array.shape} is not an image; expected (H, W) or (H, W, C) with C in 1, 3, 4"
        )
    if array.size == 0:
        raise InputError(f"{source}: array is empty (shape {array.shape})")
    if array.dtype == np.uint8:
        data = array
    elif array.dtype == np.uint16:
        data = (array >> 8).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer):
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            raise InputError(f"{source}: array contains NaN or Inf")
        if array.min() < 0 or array.max() > 255:
            raise InputError(
                f"{source}: values range {array.min()}..{array.max()}; expected pixels in 0..255 "
                "(uint16 arrays may use 0..65535)"
            )
        data = np.rint(array).astype(np.uint8)
    else:
        raise InputError(f"{source}: unsupported array dtype {array.dtype}; use uint8 or float")
    return Image.fromarray(np.ascontiguousarray(data))


def preprocess(item: ImageInput, spec: ModelSpec) -> np.ndarray:
    """One input (path, Pillow image or array) → one (C, H, W) sample for the model."""
    if spec.input_kind is InputKind.HAND_LANDMARKS:  # 42 numbers from a photo resized to 1×42 would be noise
        raise InputError(
            f"model {spec.name} reads hand landmarks, not pixels; run it through the hand stage "
            "(`edge infer --hands`, runtime.hand_classify)"
        )
    if isinstance(item, np.ndarray):
        fast = _fast_pixels(item, spec)
        if fast is not None:
            return normalize(fast, spec)
        image = array_to_image(item)
    elif isinstance(item, Image.Image):
        image = item
    elif isinstance(item, (str, os.PathLike)):
        image = load_image(item, draft_side=_draft_side(spec))
    else:
        raise InputError(f"unsupported input type {type(item).__name__}; expected a path, PIL image or array")
    source = str(item) if isinstance(item, (str, os.PathLike)) else f"{type(item).__name__} input"
    try:
        return normalize(image_to_pixels(image, spec), spec)
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from None
    except (ValueError, OSError, TypeError) as exc:  # a mode Pillow cannot convert (LAB, CMYK;16, ...)
        raise InputError(
            f"{source}: cannot convert this {image.mode} image to {spec.color_mode.value} ({exc}); "
            "save it as 8-bit RGB or grayscale"
        ) from None


def _draft_side(spec: ModelSpec) -> int:
    """The side a JPEG may be reduced to while decoding: twice the model's input (or resize target), so the
    antialiased resize that follows still has at least 2× the pixels it keeps."""
    side = max(spec.height, spec.width, spec.resize_size or 0)
    return 2 * side


def _fast_pixels(array: np.ndarray, spec: ModelSpec) -> np.ndarray | None:
    """uint8 arrays already at the model's size and colour layout skip Pillow entirely.

    Pillow would return the same bytes (no resize, no conversion), so the result is identical.
    """
    if spec.has_deploy_steps or array.dtype != np.uint8 or array.shape[:2] != (spec.height, spec.width):
        return None
    if spec.color_mode is ColorMode.GRAY and array.ndim == 2:
        return array
    if spec.color_mode is ColorMode.RGB and array.ndim == 3 and array.shape[2] == 3:
        return array
    return None


def preprocess_batch(items: Iterable[ImageInput], spec: ModelSpec) -> np.ndarray:
    """Many inputs → one (N, C, H, W) batch. Raises InputError for the first bad input."""
    samples = [preprocess(item, spec) for item in items]
    if not samples:
        raise InputError("empty batch: no inputs were given")
    return np.stack(samples)


def find_images(path: str | os.PathLike) -> list[Path]:
    """A file, or the image files in a folder (recursive, sorted by path)."""
    path = Path(path)
    if path.is_dir():
        if not os.access(path, os.R_OK | os.X_OK):  # rglob would quietly find nothing in it
            raise InputError(f"{path}: permission denied reading this folder; make it readable (chmod +rx)")
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return [path]
