"""Where per-frame results go: JSON Lines (stdout or a file) and annotated video files (PyAV).

Files are written to a temporary name beside the target and renamed on ``close()`` (also after Ctrl-C),
so an interrupted run never leaves a half-written file under the chosen name. Paths go through the one writer
(``formats.writer``): checked when the sink is made, before the first frame — a file of another kind needs
``--force``, an input of the run is refused, a FIFO or character device is written into.
"""

from __future__ import annotations

import contextlib
import json
import queue
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from PIL import Image

from formats.errors import RuntimeToolkitError
from formats.writer import Kind, artifact_path, check_output
from runtime.stream.overlay import RateMeter, draw_overlay
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
        self.path, self.lines = path, 0
        if path is not None:
            self._out = self._stack.enter_context(open(self._stack.enter_context(artifact_path(path, Kind.JSONL)), "w"))
        else:
            self._out = stream or sys.stdout

    def write(self, result: FrameResult, image: Image.Image | None) -> None:
        self._out.write(json.dumps(result.to_dict()) + "\n")
        self._out.flush()
        self.lines += 1

    def close(self) -> None:
        self._stack.close()

    def outputs(self) -> list[dict]:
        return [] if self.path is None else [{"jsonl": str(self.path), "frames": self.lines}]


class AnnotatedVideoSink:
    """The frames with their top-k bars, fps and ROI drawn on them, one video file per source.

    One source writes ``target``; several write ``<stem>.<n><suffix>`` beside it. The codec follows the
    suffix: .mp4/.mov/.mkv H.264 (libx264), .avi MJPEG, .webm VP9.

    Drawing and encoding run on a writer thread of their own, behind a bounded queue of ``queue_size``
    frames, so the pipeline's result thread only hands a frame over. When the queue is full a live source's
    frame is dropped (counted in ``outputs()``: the camera is never held up by the encoder); a file source
    waits, so its annotated video has every classified frame. A failure of the writer (a full disk) is
    raised by the next ``write()`` or by ``close()``.
    """

    def __init__(
        self,
        target: Path,
        sources: int,
        fps: float,
        roi: Roi | None = None,
        live: Sequence[bool] | None = None,
        queue_size: int = 64,
    ) -> None:
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
        for path in self.paths:
            check_output(path, Kind.VIDEO)
        self.fps, self.roi = fps, roi
        self.live = list(live) if live is not None else [False] * sources
        self.written = [0] * sources
        self.dropped = [0] * sources
        self.encode_s = 0.0  # on the writer thread
        self._stack = contextlib.ExitStack()
        self._outputs: dict[int, tuple] = {}
        self._meters = [RateMeter() for _ in range(sources)]
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._writer, name="edge-annotate", daemon=True)
        self._thread.start()

    def write(self, result: FrameResult, image: Image.Image | None) -> None:
        if image is None:
            return
        self._raise_failure()
        self._meters[result.source].tick()
        item = (result, image, self._meters[result.source].rate())
        if self.live[result.source]:
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                self.dropped[result.source] += 1
            return
        while True:  # a file source waits for room, but not for a writer that has died
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                self._raise_failure()

    def close(self) -> None:
        self._queue.put(_CLOSE)
        self._thread.join()
        try:
            self._raise_failure()
            for container, stream in self._outputs.values():
                for packet in stream.encode(None):  # flush the encoder's delayed frames
                    container.mux(packet)
                container.close()
        except BaseException as exc:  # the temp files are removed: a failed run never replaces a good output
            self._stack.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._stack.close()  # renames every finished temp file into place

    def outputs(self) -> list[dict]:
        """For the run's summary: each file written, its frame count and the frames the encoder dropped."""
        return [
            {"annotated": str(path), "frames": self.written[n], "dropped": self.dropped[n]}
            for n, path in enumerate(self.paths)
        ]

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _writer(self) -> None:
        while (item := self._queue.get()) is not _CLOSE:
            if self._failure is not None:
                continue  # keep draining so no writer is left blocked; the failure is raised to the pipeline
            result, image, fps = item
            start = time.perf_counter()
            try:
                self._encode(result, image, fps)
            except BaseException as exc:  # a full disk, an encoder error: raised by the next write() or close()
                self._failure = exc
            self.encode_s += time.perf_counter() - start

    def _encode(self, result: FrameResult, image: Image.Image, fps: float) -> None:
        if result.source not in self._outputs:
            self._outputs[result.source] = self._open(result.source, image.size)
        container, stream = self._outputs[result.source]
        frame_image = draw_overlay(image, result.prediction, fps, self.roi).crop((0, 0, stream.width, stream.height))
        frame = self._av.VideoFrame.from_image(frame_image)
        for packet in stream.encode(frame):
            container.mux(packet)
        self.written[result.source] += 1

    def _open(self, source: int, size: tuple[int, int]):
        if min(size) < 2:
            raise RuntimeToolkitError(
                f"--annotate {self.paths[source]}: the first frame is {size[0]}x{size[1]} pixels; the video encoder "
                "needs at least 2x2; leave out --annotate for this source"
            )
        tmp = self._stack.enter_context(artifact_path(self.paths[source], Kind.VIDEO))
        container = self._av.open(str(tmp), "w", format=self.format)
        stream = container.add_stream(self.codec, rate=max(1, round(self.fps)))
        stream.width, stream.height = size[0] - size[0] % 2, size[1] - size[1] % 2  # 4:2:0 needs even sizes
        stream.pix_fmt = self.pix_fmt
        if self.codec == "libx264":
            stream.options = {"preset": "veryfast"}
        return container, stream


_CLOSE = object()
