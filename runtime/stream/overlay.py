"""What an annotated frame shows: the top-k labels as probability bars, the stream's fps and the ROI.

Used by the annotated video files (``sinks.AnnotatedVideoSink``) and the browser view (``view.LiveView``),
always on their own threads, never on the inference path. ``RateMeter`` is the frames/s they print.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import time

from PIL import Image, ImageDraw, ImageFont

from runtime.postprocess import Prediction
from runtime.stream.pipeline import Roi

BAR = (118, 185, 0)  # filled part of a probability bar
TRACK = (60, 60, 60)  # its empty part
PANEL = (0, 0, 0, 170)  # the translucent panel behind the text


class RateMeter:
    """Events per second over the last ``window_s`` seconds (one ``tick()`` per frame; O(1) per tick)."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._times: collections.deque = collections.deque()

    def tick(self, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        self._times.append(now)
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()

    def rate(self) -> float:
        times = tuple(self._times)
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])


@functools.lru_cache(maxsize=8)
def font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow ≥ 10.1 ships a scalable default font
    except TypeError:
        return ImageFont.load_default()


@functools.lru_cache(maxsize=2048)
def text_mask(text: str, size: int) -> Image.Image:
    """``text`` rendered once as an 8-bit mask: labels and whole percentages repeat, and rendering is the slow part."""
    text_font = font(size)
    left, top, right, bottom = text_font.getbbox(text)
    mask = Image.new("L", (max(1, right), max(1, bottom)))
    ImageDraw.Draw(mask).text((0, 0), text, fill=255, font=text_font)
    return mask


def draw_overlay(
    image: Image.Image, prediction: Prediction | None, fps: float | None = None, roi: Roi | None = None
) -> Image.Image:
    """A copy of ``image`` (RGB) with one bar per top-k class, best first, and the fps under them. ``None``: the
    hand stage found no hand in this frame (an empty bar says so)."""
    if prediction is None:
        prediction = Prediction((-1,), ("no hand",), (0.0,))
    image = image.convert("RGB") if image.mode != "RGB" else image.copy()
    width, height = image.size
    size = max(9, min(22, min(width, height) // 12))
    row = size + max(2, size // 3)
    rows = len(prediction.labels) + (fps is not None)
    panel_w = min(width, max(width // 2, size * 9))
    panel_h = min(height, rows * row + 4)
    # blend only the panel's corner, not a full-frame layer: a third of the cost on a 336×336 frame
    layer = Image.new("RGBA", (panel_w, panel_h), PANEL)
    draw = ImageDraw.Draw(layer)
    for n, (label, p) in enumerate(zip(prediction.labels, prediction.probabilities)):
        top = 2 + n * row
        draw.rectangle((2, top, panel_w - 2, top + row - 2), fill=TRACK + (200,))
        draw.rectangle((2, top, 2 + round((panel_w - 4) * max(0.0, min(1.0, p))), top + row - 2), fill=BAR + (230,))
        layer.paste((255, 255, 255, 255), (4, top), text_mask(f"{label} {p:.0%}", size))
    if fps is not None:
        layer.paste((255, 255, 0, 255), (4, 2 + len(prediction.labels) * row), text_mask(f"{fps:.0f} fps", size))
    corner = image.crop((0, 0, panel_w, panel_h)).convert("RGBA")
    corner.alpha_composite(layer)
    image.paste(corner.convert("RGB"), (0, 0))
    if roi is not None:
        with contextlib.suppress(ValueError):  # a ROI outside this frame was reported by the decoder already
            ImageDraw.Draw(image).rectangle(roi.box(image.size), outline=(0, 255, 0), width=2)
    return image
