"""A real HTTP video server for the network-stream tests (stdlib HTTP server, PyAV/FFmpeg encoding).

``python serve_stream.py IMAGES.npy SECONDS [FPS]`` listens on 127.0.0.1 (an ephemeral port, printed as
``port N``) and answers ``GET /live.ts`` with H.264 in MPEG-TS and ``GET /live.mjpg`` with multipart MJPEG
(FFmpeg's ``mpjpeg``), both encoded live from the images (looping) at FPS frames per second of wall time, for
at most SECONDS per client. The whole process exits after SECONDS + 5 s, whatever happens.
"""

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import av
import numpy as np
from PIL import Image

FORMATS = {
    "/live.ts": ("mpegts", "libx264", "yuv420p", "video/mp2t"),
    "/live.mjpg": ("mpjpeg", "mjpeg", "yuvj420p", "multipart/x-mixed-replace;boundary=ffmpeg"),
}


class _Socket:
    """The file-like object PyAV writes the container into: straight to the client's socket."""

    def __init__(self, wfile) -> None:
        self.wfile = wfile

    def write(self, data) -> int:
        self.wfile.write(data)
        self.wfile.flush()
        return len(data)


def handler(images: np.ndarray, seconds: float, fps: int):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path not in FORMATS:
                self.send_error(404)
                return
            fmt, codec, pix_fmt, mime = FORMATS[self.path]
            self.send_response(200)
            self.send_header("Content-Type", mime)
            self.end_headers()
            try:
                self._stream(fmt, codec, pix_fmt)
            except (BrokenPipeError, ConnectionResetError, av.error.FFmpegError):
                pass  # the client went away

        def _stream(self, fmt: str, codec: str, pix_fmt: str) -> None:
            out = av.open(_Socket(self.wfile), "w", format=fmt)
            stream = out.add_stream(codec, rate=fps)
            stream.width, stream.height = images.shape[2] * 4, images.shape[1] * 4
            stream.pix_fmt = pix_fmt
            if codec == "libx264":
                stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
            end = time.monotonic() + seconds
            n = 0
            while time.monotonic() < end:
                image = (
                    Image.fromarray(images[n % len(images)])
                    .convert("RGB")
                    .resize((stream.width, stream.height), Image.Resampling.NEAREST)
                )
                frame = av.VideoFrame.from_image(image)
                frame.pts = n
                for packet in stream.encode(frame):
                    out.mux(packet)
                n += 1
                time.sleep(1.0 / fps)
            for packet in stream.encode(None):
                out.mux(packet)
            out.close()

        def log_message(self, *args) -> None:
            pass

    return Handler


def main() -> int:
    images, seconds = np.load(sys.argv[1]), float(sys.argv[2])
    fps = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(images, seconds, fps))
    server.daemon_threads = True
    threading.Timer(seconds + 5, server.shutdown).start()
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
