"""The one deterministic preprocessing implementation (numpy + Pillow), driven by a ModelSpec.

decode → colour mode → resize → scale/normalize → layout → batch. Training's evaluation
transform, calibration, parity tests and the runtime all call these functions; training
augmentation happens *before* them, never instead of them.

Inputs may be image files (PNG, JPEG, BMP, TIFF, GIF, WebP), ``PIL.Image`` objects or numpy
arrays shaped (H, W) or (H, W, C) with C in {1, 3, 4}, uint8 (0–255), uint16 (0–65535) or float
(already in 0–255).
"""

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
from runtime.spec import ColorMode, InputDType, InputKind, Interpolation, ModelSpec, ResizePolicy

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
    """A Pillow image → resized uint8 pixels (H, W) or (H, W, 3) in the spec's colour mode."""
    image = resize_image(to_color_mode(image, spec.color_mode), spec)
    return np.asarray(image, dtype=np.uint8)


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
    if array.dtype != np.uint8 or array.shape[:2] != (spec.height, spec.width):
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
