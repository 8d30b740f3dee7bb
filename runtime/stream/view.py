"""``--view [HOST:]PORT``: watch the annotated streams in a browser while they are classified.

A standard-library HTTP server (``ThreadingHTTPServer``, daemon threads) serves

- ``/``                 a page with every stream side by side: the live picture, its top-k, fps, latency
                        p50/p99 and drop counts (the page polls ``/stats.json`` twice a second);
- ``/stream/<n>.mjpg``  stream ``n`` as MJPEG (``multipart/x-mixed-replace``: any browser, ``ffplay``, VLC);
- ``/frame/<n>.jpg``    its latest annotated frame, once;
- ``/stats.json``       the numbers the page shows.

Viewers never slow inference. The pipeline's result thread only drops the newest frame into one slot per
stream (O(1), no copy, no encoding); an encoder thread draws the overlay and encodes JPEG at most
``MAX_VIEW_FPS`` times a second per stream, and only while someone watches; each viewer's thread sends the
latest JPEG when it is ready. A frame replaced in its slot before it was
encoded, or a JPEG a slow viewer never got, is dropped and counted (``view_dropped``), never queued.
"""

from __future__ import annotations

import collections
import html
import io
import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from PIL import Image

from formats.errors import RuntimeToolkitError
from runtime.stream.overlay import RateMeter, draw_overlay
from runtime.stream.pipeline import FrameResult, Roi, SourceStats

MAX_VIEW_FPS = 15.0  # per stream: enough to watch, and it bounds the CPU the encoder takes from inference
# The encoder thread is not niced: a low-priority thread that holds the GIL when the OS preempts it stalls the
# inference threads behind it (measured: watched/off fell from 0.90 to 0.43 on the loaded 2-core box).
MIN_VIEW_SIDE = 336  # smaller frames (a 28×28 digit, a 112×112 test clip) are enlarged so the text is legible
JPEG_QUALITY = 80
LATENCY_WINDOW = 300  # the last frames' latencies: the page shows live percentiles, not the whole run's


class ViewError(RuntimeToolkitError):
    """The view cannot listen where it was asked to."""


@dataclass
class _Slot:
    """One stream's newest result and picture, and its newest JPEG (guarded by ``LiveView._cond``)."""

    uri: str
    result: FrameResult | None = None
    image: Image.Image | None = None
    pending: bool = False  # ``image`` has not been encoded yet
    jpeg: bytes | None = None
    jpeg_seq: int = 0
    encoded_at: float = 0.0
    published: int = 0
    view_dropped: int = 0
    viewers: int = 0
    meter: RateMeter = field(default_factory=RateMeter)
    latencies_ms: collections.deque = field(default_factory=lambda: collections.deque(maxlen=LATENCY_WINDOW))


class LiveView:
    """A sink (``write``/``close``) that serves the streams to browsers; ``start()`` binds and returns the URL."""

    def __init__(self, host: str, port: int, uris: Sequence[str], roi: Roi | None = None, model: str = "") -> None:
        self.host, self.port, self.roi, self.model = host, port, roi, model
        self._slots = [_Slot(uri) for uri in uris]
        self._cond = threading.Condition()
        self._closed = False
        self._pipeline_stats: Sequence[SourceStats] = ()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # lifecycle ---------------------------------------------------------------------------------

    def start(self) -> str:
        try:
            self._server = _Server((self.host, self.port), _Handler, self)
        except OSError as exc:
            raise ViewError(
                f"--view {self.host}:{self.port}: cannot listen there ({exc.strerror or exc}); "
                "choose another port (0 picks a free one)"
            ) from None
        self.port = self._server.server_address[1]
        for target, name in ((self._server.serve_forever, "edge-view-http"), (self._encode_loop, "edge-view-jpeg")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self.url

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def attach(self, stats: Sequence[SourceStats]) -> None:
        """The pipeline's per-source counters, for the drop counts the page shows."""
        self._pipeline_stats = stats

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def outputs(self) -> list[dict]:
        """For the run's summary: the URL, the JPEG frames encoded for viewers and those never shown."""
        with self._cond:
            shown = sum(slot.jpeg_seq for slot in self._slots)
            dropped = sum(slot.view_dropped for slot in self._slots)
        return [{"view": self.url, "frames": shown, "not_shown": dropped}]

    # the pipeline's result thread: O(1) and never blocks on a viewer ---------------------------

    def write(self, result: FrameResult, image: Image.Image | None) -> None:
        slot = self._slots[result.source]
        with self._cond:
            if slot.pending and slot.viewers:
                slot.view_dropped += 1  # replaced before anyone saw it
            slot.result, slot.image, slot.pending = result, image, image is not None
            slot.published += 1
            slot.meter.tick()
            slot.latencies_ms.append(result.latency_ms)
            self._cond.notify_all()

    # the encoder thread --------------------------------------------------------------------------

    def _encode_loop(self) -> None:
        interval = 1.0 / MAX_VIEW_FPS
        while True:
            with self._cond:
                due = self._due(time.perf_counter(), interval)
                while not due and not self._closed:
                    self._cond.wait(interval)
                    due = self._due(time.perf_counter(), interval)
                if self._closed:
                    return
                work = [(slot, slot.result, slot.image, slot.meter.rate()) for slot in due]
                for slot in due:
                    slot.pending = False
                    slot.encoded_at = time.perf_counter()
            for slot, result, image, fps in work:
                jpeg = self.render(result, image, fps)
                with self._cond:
                    slot.jpeg, slot.jpeg_seq = jpeg, slot.jpeg_seq + 1
                    self._cond.notify_all()

    def _due(self, now: float, interval: float) -> list[_Slot]:
        """Streams with an unencoded frame that someone watches (or nobody has seen yet), not encoded too recently."""
        return [
            s for s in self._slots if s.pending and (s.viewers or s.jpeg is None) and now - s.encoded_at >= interval
        ]

    def render(self, result: FrameResult, image: Image.Image, fps: float) -> bytes:
        """The annotated frame as JPEG bytes (enlarged first when it is small, so the overlay can be read)."""
        scale = -(-MIN_VIEW_SIDE // max(1, min(image.size)))
        if scale > 1:
            image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
        roi = self.roi if self.roi is None or scale == 1 else _scaled(self.roi, scale)
        buffer = io.BytesIO()
        draw_overlay(image, result.prediction, fps, roi).save(buffer, format="JPEG", quality=JPEG_QUALITY)
        return buffer.getvalue()

    # what the HTTP threads read ------------------------------------------------------------------

    def stats(self) -> dict:
        streams = []
        with self._cond:
            for n, slot in enumerate(self._slots):
                pipeline = self._pipeline_stats[n] if n < len(self._pipeline_stats) else None
                latencies = np.fromiter(slot.latencies_ms, dtype=np.float64)
                streams.append(
                    {
                        "stream": n,
                        "source": slot.uri,
                        "frame": None if slot.result is None else slot.result.frame,
                        "label": _label(slot.result),
                        "top_k": []
                        if _label(slot.result) in (None, NO_HAND)
                        else slot.result.prediction.to_dict()["top_k"],
                        "fps": round(slot.meter.rate(), 2),
                        "latency_ms": {
                            "p50": round(float(np.percentile(latencies, 50)), 2) if latencies.size else None,
                            "p99": round(float(np.percentile(latencies, 99)), 2) if latencies.size else None,
                        },
                        "classified": slot.published,
                        "dropped": 0 if pipeline is None else pipeline.dropped,
                        "view_dropped": slot.view_dropped,
                        "viewers": slot.viewers,
                        "jpeg_frames": slot.jpeg_seq,
                    }
                )
        return {"model": self.model, "streams": streams}

    def latest_jpeg(self, n: int, after: int, timeout: float) -> tuple[bytes | None, int]:
        """The newest JPEG of stream ``n`` newer than sequence ``after`` (waits up to ``timeout``), and its number."""
        slot = self._slots[n]
        with self._cond:
            self._cond.wait_for(lambda: self._closed or slot.jpeg_seq > after, timeout)
            if slot.jpeg_seq <= after:
                return None, after
            if after and slot.jpeg_seq > after + 1 and slot.viewers:
                slot.view_dropped += slot.jpeg_seq - after - 1  # this viewer was too slow for those
            return slot.jpeg, slot.jpeg_seq

    def watching(self, n: int, delta: int) -> None:
        with self._cond:
            self._slots[n].viewers += delta
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def streams(self) -> int:
        return len(self._slots)

    def page(self) -> bytes:
        cards = "".join(
            f'<section class="card" id="s{n}"><h2>{html.escape(slot.uri)}</h2>'
            f'<img alt="stream {n}" data-src="/stream/{n}.mjpg"><ol class="topk"></ol><p class="meta"></p></section>'
            for n, slot in enumerate(self._slots)
        )
        return PAGE.replace("{title}", html.escape(self.model or "edge infer")).replace("{cards}", cards).encode()


def _scaled(roi: Roi, scale: int) -> Roi:
    if roi.center:
        return roi
    return Roi(roi.x * scale, roi.y * scale, roi.width * scale, roi.height * scale)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # an MJPEG viewer never keeps the process alive
    allow_reuse_address = True

    def __init__(self, address, handler, view: LiveView) -> None:
        self.view = view
        super().__init__(address, handler)


_STREAM = re.compile(r"^/(stream|frame)/(\d+)\.(mjpg|jpg)$")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass  # stdout carries the results and stderr the summary: no access log in either

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        view = self.server.view
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            return self._send(200, "text/html; charset=utf-8", view.page())
        if path == "/stats.json":
            return self._send(200, "application/json", json.dumps(view.stats()).encode())
        match = _STREAM.match(path)
        if (
            match is None
            or int(match.group(2)) >= view.streams
            or (match.group(1) == "stream") != (match.group(3) == "mjpg")
        ):
            return self._send(404, "text/plain", b"not found: try / or /stats.json\n")
        n = int(match.group(2))
        if match.group(1) == "frame":
            view.watching(n, +1)  # asks the encoder for a fresh frame; the last one is sent if none comes
            try:
                jpeg, seq = view.latest_jpeg(n, 0, timeout=5.0)
                jpeg = view.latest_jpeg(n, seq, timeout=1.0)[0] or jpeg
            finally:
                view.watching(n, -1)
            if jpeg is None:
                return self._send(503, "text/plain", b"no frame yet\n")
            return self._send(200, "image/jpeg", jpeg)
        self._mjpeg(view, n)

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _mjpeg(self, view: LiveView, n: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        view.watching(n, +1)
        seq = 0
        try:
            while not view.closed:
                jpeg, seq = view.latest_jpeg(n, seq, timeout=1.0)
                if jpeg is None:
                    continue
                head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                self.wfile.write(head + jpeg + b"\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the viewer left
        finally:
            view.watching(n, -1)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}: live view</title>
<style>
body { font: 14px system-ui, sans-serif; background: #111; color: #eee; margin: 1em; }
main { display: flex; flex-wrap: wrap; gap: 1em; }
.card { background: #222; padding: .6em; border-radius: 6px; width: 360px; }
.card h2 { font-size: 13px; margin: 0 0 .4em; overflow-wrap: anywhere; color: #aaa; }
.card img { width: 100%; image-rendering: pixelated; background: #000; min-height: 200px; display: block; }
.topk { list-style: none; padding: 0; margin: .5em 0; }
.topk li { position: relative; height: 1.5em; background: #333; margin: 2px 0; }
.topk .bar { position: absolute; inset: 0 auto 0 0; background: #76b900; }
.topk .txt { position: relative; padding-left: .3em; line-height: 1.5em; }
.meta { color: #bbb; margin: 0; }
</style></head>
<body><h1>{title}</h1><main>{cards}</main>
<script>
function render(doc) {
  let frames = 0;
  for (const s of doc.streams) {
    const card = document.getElementById("s" + s.stream);
    frames += s.jpeg_frames;
    card.querySelector(".topk").innerHTML = s.top_k.map(t =>
      `<li><span class="bar" style="width:${(100 * t.probability).toFixed(1)}%"></span>` +
      `<span class="txt label">${t.label} ${(100 * t.probability).toFixed(1)}%</span></li>`).join("");
    const lat = s.latency_ms.p50 === null ? "" :
      ` · latency p50 ${s.latency_ms.p50.toFixed(1)} ms p99 ${s.latency_ms.p99.toFixed(1)} ms`;
    card.querySelector(".meta").textContent = `${s.fps.toFixed(1)} fps${lat} · frame ${s.frame}` +
      ` · ${s.dropped} dropped · ${s.view_dropped} not shown`;
    card.dataset.label = s.label || "";
  }
  document.body.dataset.frames = frames;
}
async function poll() {
  try { render(await (await fetch("/stats.json", {cache: "no-store"})).json()); } catch (e) {}
  setTimeout(poll, 500);
}
window.addEventListener("load", () => {
  for (const img of document.querySelectorAll("img[data-src]")) img.src = img.dataset.src;
  poll();
});
</script></body></html>
"""


NO_HAND = "no hand"


def _top_k(result) -> list:
    return [] if result is None or result.prediction is None else result.prediction.to_dict()["top_k"]


def _label(result) -> str | None:
    """The frame's label; "no hand" where the hand stage found none (``prediction`` None)."""
    if result is None:
        return None
    return NO_HAND if result.prediction is None else result.prediction.label
