"""Decoder thread per source → bounded queue → one DynamicBatcher for all sources → postprocess → sinks.

- Each source has its own decoder thread, which also selects (``--every``, ``--fps``, ``--max-frames``),
  crops the region of interest and preprocesses with the ModelSpec (``runtime.preprocess``), so the
  CPU-heavy per-frame work runs in parallel across sources.
- A feeder thread takes frames round-robin from the per-source queues and submits them to the shared
  ``DynamicBatcher``: frames of different streams share one backend call.
- The caller's thread resolves the futures in submission order, postprocesses (softmax, smoothing,
  top-k) and writes the sinks.

Pressure flows back from the sinks through a bounded in-flight queue and the batcher's bounded queue to the
source queues. A file source then waits (it never drops); a live source drops its *oldest* queued frame,
counted in ``dropped``, so the camera is never blocked. For every source
``decoded = skipped (--every/--fps) + dropped + classified + failed``; undecodable packets are counted
apart and named. ``stop()`` (Ctrl-C) ends decoding and finishes every frame already decoded.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from formats.errors import InputError, RuntimeToolkitError
from runtime.batcher import DynamicBatcher
from runtime.model import Classifier
from runtime.postprocess import Prediction, to_probabilities, top_k
from runtime.preprocess import preprocess
from runtime.stream.sources import DecodedFrame, ReadOptions, ReadReport, SourceError, open_reader
from runtime.stream.uri import SourceSpec

LATENCY_WINDOW = 10_000  # latencies kept per source for the percentiles (memory stays bounded on long runs)


@dataclass(frozen=True)
class Roi:
    """A region of interest in frame pixels; ``center`` is the largest centred square."""

    x: int = 0
    y: int = 0
    width: int = 0
    height: int = 0
    center: bool = False

    @classmethod
    def parse(cls, text: str) -> Roi:
        if text.strip().lower() in ("center", "centre"):
            return cls(center=True)
        try:
            x, y, w, h = (int(v) for v in text.split(","))
        except ValueError:
            raise ValueError(f"--roi {text!r}: expected x,y,w,h in pixels (e.g. 160,80,320,320) or 'center'") from None
        if x < 0 or y < 0 or w < 1 or h < 1:
            raise ValueError(f"--roi {text!r}: x and y must be ≥ 0, width and height ≥ 1")
        return cls(x, y, w, h)

    def box(self, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) inside a frame of ``size`` = (width, height); ValueError if it leaves it."""
        fw, fh = size
        if self.center:
            side = min(fw, fh)
            left, top = (fw - side) // 2, (fh - side) // 2
            return left, top, left + side, top + side
        if self.x + self.width > fw or self.y + self.height > fh:
            raise ValueError(
                f"--roi {self.x},{self.y},{self.width},{self.height} leaves the {fw}×{fh} frame; "
                "give a region inside it or use --roi center"
            )
        return self.x, self.y, self.x + self.width, self.y + self.height


@dataclass(frozen=True)
class StreamOptions:
    fps: float | None = None  # cap on classified frames per second of source time, per source
    every: int = 1  # classify every Nth decoded frame
    max_frames: int | None = None  # stop a source after this many selected frames
    roi: Roi | None = None
    smoothing: int = 1  # average probabilities over the last N frames of a source
    top_k: int = 1
    max_batch: int = 32
    max_delay_ms: float = 5.0
    queue_size: int = 8  # per source, frames decoded and preprocessed but not yet submitted
    keep_images: bool = False  # sinks need the frame (annotation): keep it until it is written
    read: ReadOptions = field(default_factory=ReadOptions)


@dataclass
class SourceStats:
    uri: str
    live: bool
    decoded: int = 0
    skipped: int = 0
    dropped: int = 0
    classified: int = 0  # frames answered, "no hand" included
    failed: int = 0
    no_hand: int = 0  # of the classified: the hand stage found no hand (no letter given)
    error: str | None = None
    report: ReadReport = field(default_factory=ReadReport)
    latencies_ms: collections.deque = field(default_factory=lambda: collections.deque(maxlen=LATENCY_WINDOW))
    first_at: float | None = None
    last_at: float | None = None
    decode_s: float = 0.0  # written by this source's decoder thread only
    preprocess_s: float = 0.0

    @property
    def accounted(self) -> bool:
        return self.decoded == self.skipped + self.dropped + self.classified + self.failed


@dataclass
class StageTimes:
    """Seconds spent in the batcher's backend calls and in the sinks (decode and preprocess: per source)."""

    inference: float = 0.0
    sink: float = 0.0
    batches: int = 0  # backend calls
    batched_frames: int = 0


@dataclass
class FrameResult:
    source: int
    uri: str
    frame: int
    pts: float | None
    loop: int
    prediction: Prediction | None  # None: the hand stage found no hand
    latency_ms: float  # decoded → postprocessed

    def to_dict(self) -> dict:
        return {
            "source": self.uri,
            "stream": self.source,
            "frame": self.frame,
            "pts": None if self.pts is None else round(self.pts, 6),
            "loop": self.loop,
            **(self.prediction.to_dict() if self.prediction is not None else {"label": "no hand", "hand": False}),
            "latency_ms": round(self.latency_ms, 3),
        }


@dataclass
class _Pending:
    source: int
    frame: DecodedFrame
    sample: np.ndarray | None  # None: no hand in the frame (the hand stage), nothing to classify


_END = object()


class _FrameQueue:
    """A per-source bounded queue sharing one condition with the feeder: live sources drop the oldest."""

    def __init__(self, maxsize: int, drop_oldest: bool, ready: threading.Condition) -> None:
        self.items: collections.deque = collections.deque()
        self.maxsize, self.drop_oldest, self.ready = maxsize, drop_oldest, ready
        self.finished = False

    def put(self, item: _Pending) -> bool:
        """Queue ``item``; True when an older frame was dropped to make room."""
        with self.ready:
            while len(self.items) >= self.maxsize and not self.drop_oldest:
                self.ready.wait(0.1)  # the feeder drains until every source is finished, even after stop()
            dropped = len(self.items) >= self.maxsize
            if dropped:
                self.items.popleft()
            self.items.append(item)
            self.ready.notify_all()
            return dropped


class StreamPipeline:
    def __init__(
        self,
        classifier: Classifier,
        sources: Sequence[SourceSpec],
        options: StreamOptions,
        on_result: Callable[[FrameResult, Image.Image | None], None],
        on_tick: Callable[[StreamPipeline], None] | None = None,
        prepare: Callable[[Image.Image], np.ndarray | None] | None = None,
    ) -> None:
        """``prepare``: image → the model's input, or None for "no hand" (``runtime.hand_classify``); default
        ``runtime.preprocess`` with the classifier's spec."""
        self.classifier, self.spec = classifier, classifier.spec
        self.prepare = prepare
        self.sources, self.options = list(sources), options
        self.on_result, self.on_tick = on_result, on_tick
        self.stats = [SourceStats(s.uri, s.live) for s in self.sources]
        self.stages = StageTimes()
        self.inference_errors: list[str] = []
        self._stop = threading.Event()
        self._ready = threading.Condition()
        self._queues = [_FrameQueue(options.queue_size, s.live, self._ready) for s in self.sources]
        # submitted but not yet written: enough for a batch being run and the next one being gathered; more
        # would only add latency before a live source starts dropping
        self._inflight: queue.Queue = queue.Queue(maxsize=2 * options.max_batch)
        self._smooth = [collections.deque(maxlen=options.smoothing) for _ in self.sources]
        self.started_at = self.finished_at = 0.0
        if options.read.decoder_threads == 0 and len(self.sources) > 1:
            threads = max(1, (os.cpu_count() or 1) // len(self.sources))
            self.options = dataclasses.replace(options, read=dataclasses.replace(options.read, decoder_threads=threads))

    def stop(self) -> None:
        """Stop decoding; the frames already decoded are still classified and written."""
        self._stop.set()

    def run(self) -> None:
        self.started_at = time.perf_counter()
        batcher = DynamicBatcher(
            self._run_batch, self.options.max_batch, self.options.max_delay_ms, queue_size=self.options.max_batch
        )
        decoders = [
            threading.Thread(target=self._decode, args=(i,), name=f"edge-decode-{i}", daemon=True)
            for i in range(len(self.sources))
        ]
        feeder = threading.Thread(target=self._feed, args=(batcher,), name="edge-feeder", daemon=True)
        for thread in (*decoders, feeder):
            thread.start()
        try:
            self._collect()
        except BaseException:  # a second Ctrl-C or a failing sink: leave without waiting for blocked decoders
            self._stop.set()
            batcher.shutdown(wait=False, cancel_pending=True)
            raise
        self._stop.set()
        batcher.shutdown()
        for thread in decoders:
            thread.join(timeout=10)
        self.finished_at = time.perf_counter()

    # threads -----------------------------------------------------------------------------------

    def _decode(self, i: int) -> None:
        stats, spec, options = self.stats[i], self.sources[i], self.options
        reader = None
        selected, next_due, last_pts = 0, None, None
        try:
            reader = open_reader(spec, options.read)
            for frame in reader.frames(self._stop):
                stats.decoded += 1
                stats.decode_s += frame.decode_s
                clock = frame.pts if frame.pts is not None else frame.decoded_at
                if last_pts is not None and clock < last_pts:  # looped or reconnected: the clock restarted
                    next_due = None
                last_pts = clock
                if frame.index % options.every or (options.fps and next_due is not None and clock < next_due - 1e-6):
                    stats.skipped += 1
                    continue
                if options.fps:
                    next_due = (
                        clock + 1.0 / options.fps
                        if next_due is None or clock > next_due + 1.0 / options.fps
                        else next_due + 1.0 / options.fps
                    )
                start = time.perf_counter()
                sample = self._preprocess(frame, spec)
                stats.preprocess_s += time.perf_counter() - start
                if not options.keep_images:
                    frame.image = None
                if self._queues[i].put(_Pending(i, frame, sample)):
                    stats.dropped += 1
                selected += 1
                if options.max_frames and selected >= options.max_frames:
                    break
        except RuntimeToolkitError as exc:
            stats.error = str(exc)
        except Exception as exc:  # a decoder bug must not kill the other streams or print a traceback
            stats.error = f"{spec.uri}: unexpected {type(exc).__name__} while decoding ({exc})"
        finally:
            if reader is not None:
                stats.report = reader.report
            with self._ready:
                self._queues[i].finished = True
                self._ready.notify_all()

    def _preprocess(self, frame: DecodedFrame, spec: SourceSpec) -> np.ndarray:
        image = frame.image
        if self.options.roi is not None:
            try:
                image = image.crop(self.options.roi.box(image.size))
            except ValueError as exc:
                raise SourceError(f"{spec.uri}: {exc}") from None
        try:
            return self.prepare(image) if self.prepare is not None else preprocess(image, self.spec)
        except InputError as exc:
            raise SourceError(f"{spec.uri}: frame {frame.index}: {exc}") from None

    def _feed(self, batcher: DynamicBatcher) -> None:
        turn = 0
        try:
            while True:
                with self._ready:
                    item = self._next_item(turn)
                    while item is None and not all(q.finished for q in self._queues):
                        self._ready.wait(0.05)
                        item = self._next_item(turn)
                    self._ready.notify_all()  # room for a waiting file source
                if item is None:
                    return
                turn = item.source + 1
                if item.sample is None:  # no hand: answered without the model, in frame order
                    future = Future()
                    future.set_result(None)
                    self._inflight.put((item, future))
                    continue
                try:
                    future = batcher.submit(item.sample)
                except RuntimeToolkitError as exc:  # the batcher is gone: the frame is counted as failed
                    future = Future()
                    future.set_exception(exc)
                self._inflight.put((item, future))
        finally:
            self._inflight.put(_END)

    def _next_item(self, turn: int) -> _Pending | None:
        """The oldest frame of the next source in round-robin order that has one (call with the lock)."""
        count = len(self._queues)
        for k in range(count):
            q = self._queues[(turn + k) % count]
            if q.items:
                return q.items.popleft()
        return None

    def _run_batch(self, batch: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        outputs = self.classifier.run(batch)
        elapsed = time.perf_counter() - start
        self.stages.inference += elapsed
        self.stages.batches += 1
        self.stages.batched_frames += len(batch)
        return outputs

    # the caller's thread -----------------------------------------------------------------------

    def _collect(self) -> None:
        next_tick = time.perf_counter() + 0.5
        while True:
            try:
                entry = self._inflight.get(timeout=0.1)
            except queue.Empty:
                entry = None
            if self.on_tick is not None and time.perf_counter() >= next_tick:
                self.on_tick(self)
                next_tick = time.perf_counter() + 0.5
            if entry is _END:
                return
            if entry is not None:
                self._finish(*entry)

    def _finish(self, item: _Pending, future) -> None:
        stats = self.stats[item.source]
        try:
            row = future.result()
        except BaseException as exc:  # cancelled on abort, or the backend failed for this batch
            stats.failed += 1
            if len(self.inference_errors) < 5:
                self.inference_errors.append(
                    f"{stats.uri}: frame {item.frame.index} not classified ({type(exc).__name__}: {exc})"
                )
            return
        start = time.perf_counter()
        if row is None:
            stats.no_hand += 1
            self._emit(item, stats, None, start)
            return
        probabilities = to_probabilities(row[None], self.spec)
        window = self._smooth[item.source]
        if self.options.smoothing > 1:
            window.append(probabilities[0])
            probabilities = np.mean(window, axis=0, keepdims=True)
        prediction = top_k(probabilities, self.spec, self.options.top_k)[0]
        self._emit(item, stats, prediction, start)

    def _emit(self, item: _Pending, stats: SourceStats, prediction: Prediction | None, start: float) -> None:
        latency_ms = (time.perf_counter() - item.frame.decoded_at) * 1e3
        frame = item.frame
        self.on_result(
            FrameResult(item.source, stats.uri, frame.index, frame.pts, frame.loop, prediction, latency_ms), frame.image
        )
        now = time.perf_counter()
        stats.classified += 1
        stats.latencies_ms.append(latency_ms)
        stats.first_at = stats.first_at or now
        stats.last_at = now
        self.stages.sink += now - start
