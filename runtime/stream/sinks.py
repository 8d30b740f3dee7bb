"""Where per-frame results go: JSON Lines (stdout or a file) and annotated video files (PyAV).

Files are written to a temporary name beside the target and renamed on ``close()`` (also after Ctrl-C),
so an interrupted run never leaves a half-written file under the chosen name.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import IO

from PIL import Image, ImageDraw, ImageFont

from formats.atomic import atomic_path
from runtime.stream.pipeline import FrameResult, Roi
from runtime.stream.sources import import_av

# output suffix → (PyAV container format, encoder candidates, pixel format)
_VIDEO_FORMATS = {
    ".mp4": ("mp4", ("libx264", "h264", "mpeg4"), "yuv420p"),
    ".mov": ("mov", ("libx264", "h264", "mpeg4"), "yuv420p"),
    ".mkv": ("matroska", ("libx264", "h264", "mpeg4"), "yuv420p"),
    ".avi": ("avi", ("mjpeg",), "yuvj420p"),
    ".webm": ("webm", ("libvpx-vp9", "libvpx"), "yuv420p"),
}


class JsonLinesSink:
    """One JSON object per classified frame, flushed line by line (``tail -f`` works)."""

    def __init__(self, path: Path | None = None, stream: IO[str] | None = None) -> None:
        self._stack = contextlib.ExitStack()
        if path is not None:
            self._out = self._stack.enter_context(open(self._stack.enter_context(atomic_path(path)), "w"))
        else:
            self._out = stream or sys.stdout

    def write(self, result: FrameResult, image: Image.Image | None) -> None:
        self._out.write(json.dumps(result.to_dict()) + "\n")
        self._out.flush()

    def close(self) -> None:
        self._stack.close()


class AnnotatedVideoSink:
    """The frames with the label, confidence and ROI drawn on them, one video file per source.

    One source writes ``target``; several write ``<stem>.<n><suffix>`` beside it. The codec follows the
    suffix: .mp4/.mov/.mkv H.264 (libx264), .avi MJPEG, .webm VP9.
    """

    def __init__(self, target: Path, sources: int, fps: float, roi: Roi | None = None) -> None:
        suffix = target.suffix.lower()
        if suffix not in _VIDEO_FORMATS:
            raise ValueError(f"--annotate {target}: unknown video suffix; use one of {', '.join(_VIDEO_FORMATS)}")
        self._av = import_av()
        self.format, encoders, self.pix_fmt = _VIDEO_FORMATS[suffix]
        self.codec = next((c for c in encoders if c in self._av.codecs_available), encoders[-1])
        self.paths = (
            [target]
            if sources == 1
            else [target.with_name(f"{target.stem}.{i}{target.suffix}") for i in range(sources)]
        )
        self.fps, self.roi = fps, roi
        self._stack = contextlib.ExitStack()
        self._outputs: dict[int, tuple] = {}
        self._font = _font()

    def write(self, result: FrameResult, image: Image.Image | None) -> None:
        if image is None:
            return
        if result.source not in self._outputs:
            self._outputs[result.source] = self._open(result.source, image.size)
        container, stream = self._outputs[result.source]
        frame_image = self._draw(result, image).crop((0, 0, stream.width, stream.height))
        frame = self._av.VideoFrame.from_image(frame_image)
        for packet in stream.encode(frame):
            container.mux(packet)

    def close(self) -> None:
        try:
            for container, stream in self._outputs.values():
                for packet in stream.encode(None):  # flush the encoder's delayed frames
                    container.mux(packet)
                container.close()
        finally:
            self._stack.close()  # renames every finished temp file into place

    def _open(self, source: int, size: tuple[int, int]):
        tmp = self._stack.enter_context(atomic_path(self.paths[source]))
        container = self._av.open(str(tmp), "w", format=self.format)
        stream = container.add_stream(self.codec, rate=max(1, round(self.fps)))
        stream.width, stream.height = size[0] - size[0] % 2, size[1] - size[1] % 2  # 4:2:0 needs even sizes
        stream.pix_fmt = self.pix_fmt
        if self.codec == "libx264":
            stream.options = {"preset": "veryfast"}
        return container, stream

    def _draw(self, result: FrameResult, image: Image.Image) -> Image.Image:
        image = image.copy()
        draw = ImageDraw.Draw(image)
        if self.roi is not None:
            with contextlib.suppress(ValueError):
                draw.rectangle(self.roi.box(image.size), outline=(0, 255, 0), width=2)
        prediction = result.prediction
        text = "no hand" if prediction is None else f"{prediction.label} {prediction.probability:.0%}"
        left, top, right, bottom = draw.textbbox((4, 4), text, font=self._font)
        draw.rectangle((0, 0, right + 4, bottom + 4), fill=(0, 0, 0))
        draw.text((4, 4), text, fill=(255, 255, 255), font=self._font)
        return image


def _font() -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=20)  # Pillow ≥ 10.1 ships a scalable default font
    except TypeError:
        return ImageFont.load_default()
