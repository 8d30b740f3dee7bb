"""``edge infer … --view``: a real browser (headless Chromium) and a plain HTTP client watch a looping clip."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO

pytest.importorskip("av", reason="PyAV is not installed: pip install '.[stream]'")

START_TIMEOUT_S = 60
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1000,700",
)


@contextlib.contextmanager
def viewing(engine: Path, clip: Path, address: str, tmp_path: Path) -> Iterator[str]:
    """``python -m runtime.infer --engine E CLIP --loop --view ADDRESS`` running; yields the URL it printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "runtime.infer", "--engine", str(engine), str(clip), "--loop", "--top-k", "3"]
        + ["--view", address, "--jsonl", str(tmp_path / "frames.jsonl"), "--json"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([process.stderr], [], [], START_TIMEOUT_S)
        line = process.stderr.readline() if ready else ""
        match = re.match(r"live view: (http://\S+) \(loopback only", line)
        assert match, f"no 'live view:' line on stderr: {line!r}"
        yield match.group(1)
        process.send_signal(signal.SIGINT)  # the first Ctrl-C finishes the frames in flight and prints the summary
        out, err = process.communicate(timeout=60)
        assert process.returncode == 130, err
        assert json.loads(out)["sources"][0]["classified"] > 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def stats(url: str) -> dict:
    with urllib.request.urlopen(url + "stats.json", timeout=10) as response:
        return json.loads(response.read())


def mjpeg_frames(url: str, count: int) -> list[bytes]:
    """The first ``count`` parts of an MJPEG stream, read with the standard library's HTTP client."""
    match = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
    connection = http.client.HTTPConnection(match.group(1), int(match.group(2)), timeout=30)
    try:
        connection.request("GET", match.group(3))
        response = connection.getresponse()
        assert response.status == 200
        kind = response.getheader("Content-Type")
        assert kind.startswith("multipart/x-mixed-replace") and "boundary=frame" in kind
        frames = []
        while len(frames) < count:
            assert response.readline() == b"--frame\r\n"
            headers = dict(line.decode().rstrip("\r\n").split(": ", 1) for line in iter(response.readline, b"\r\n"))
            assert headers["Content-Type"] == "image/jpeg"
            frames.append(response.read(int(headers["Content-Length"])))
            assert response.read(2) == b"\r\n"
        return frames
    finally:
        connection.close()


def test_mjpeg_frames_decode_and_stats_name_the_label(engine, clips, tmp_path):
    with viewing(engine, clips["h264"], "0", tmp_path) as url:
        assert url.startswith("http://127.0.0.1:")  # loopback unless a host is given
        frames = [Image.open(io.BytesIO(jpeg)) for jpeg in mjpeg_frames(url + "stream/0.mjpg", 5)]
        for frame in frames:
            frame.load()  # a truncated or corrupt JPEG fails here
            assert frame.format == "JPEG" and frame.size == (336, 336)  # the 112×112 clip, enlarged 3×
        pixels = [np.asarray(f.convert("L"), dtype=np.int16) for f in frames]
        assert any(np.abs(a - b).mean() > 1 for a, b in zip(pixels, pixels[1:])), "the stream does not move"
        doc = stats(url)
        stream = doc["streams"][0]
        assert doc["model"] == "mnist_cnn" and stream["source"] == str(clips["h264"])
        assert stream["label"] in "0123456789" and len(stream["top_k"]) == 3 and stream["classified"] > 0
        assert stream["fps"] > 0 and stream["latency_ms"]["p50"] > 0 and stream["jpeg_frames"] >= 5
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(url + "stream/7.mjpg", timeout=10)
        assert missing.value.code == 404


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_headless_chromium_shows_the_stream_and_its_label(engine, clips, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed: `make browser` (apt-get install -y chromium) installs it")
    profile = str(tmp_path / "profile")

    def chromium(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=4000", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    with viewing(engine, clips["h264"], f"127.0.0.1:{_free_port()}", tmp_path) as url:
        deadline = time.monotonic() + 30
        while not stats(url)["streams"][0]["classified"] and time.monotonic() < deadline:
            time.sleep(0.2)
        dom = chromium("--dump-dom", url)
        assert dom.returncode == 0, dom.stderr[-2000:]
        shot = chromium(f"--screenshot={tmp_path / 'view.png'}", url)
        assert shot.returncode == 0, shot.stderr[-2000:]
    # the page's own DOM, after its script polled /stats.json: a label with its probability, and frames arrived
    labels = re.findall(r'class="txt label">(\d) (\d+\.\d)%<', dom.stdout)
    assert len(labels) == 3, dom.stdout[-3000:]
    assert int(re.search(r'data-frames="(\d+)"', dom.stdout).group(1)) > 0
    assert re.search(r"\d+\.\d fps · latency p50 [\d.]+ ms p99 [\d.]+ ms", dom.stdout)
    # the screenshot: the picture area (below the title, left card) shows the digit, not an empty box
    image = np.asarray(Image.open(tmp_path / "view.png").convert("L"), dtype=np.float64)
    picture = image[100:450, 25:380]
    assert picture.std() > 20 and (picture > 200).mean() > 0.01, "the stream is not on the page"
