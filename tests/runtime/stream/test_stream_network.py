"""A real network stream on loopback: a stdlib HTTP server (started here) sends live H.264/MPEG-TS and MJPEG
encoded by FFmpeg; the runtime receives, decodes and classifies it, and reconnects when the server dies."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from tests.runtime.stream.conftest import FRAMES, read_jsonl, run_cli

# PyAV comes with the stream extra (`make install` installs it through dev); without it these tests skip
av = pytest.importorskip("av", reason="PyAV is not installed: pip install '.[stream]'")


SERVER = Path(__file__).with_name("serve_stream.py")


@pytest.fixture
def server(tmp_path, mnist_test):
    """Start the server for 20 s (it exits by itself after 25 s); yields (process, base URL)."""
    images = tmp_path / "digits.npy"
    np.save(images, mnist_test.images[:FRAMES])
    process = subprocess.Popen(
        [sys.executable, str(SERVER), str(images), "20"], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline()  # "port N", printed once the socket listens
        assert line.startswith("port "), f"server did not start: {line!r}"
        yield process, f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        process.kill()
        process.wait(timeout=10)


@pytest.mark.parametrize("path", ["/live.ts", "/live.mjpg"])
def test_network_stream_frames_are_received_and_classified(server, engine, per_image_labels, tmp_path, path):
    _, base = server
    out = tmp_path / "net.jsonl"
    done = run_cli(
        "--engine", str(engine), base + path, "--max-frames", "40", "--jsonl", str(out), "--json", timeout=60
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    source = doc["sources"][0]
    rows = read_jsonl(out)
    assert source["kind"] == "network" and source["live"] and source["accounted"]
    assert source["classified"] + source["dropped"] == 40 == len(rows) + source["dropped"]
    # the server sends digit n % 60 as frame n: the labels must follow the per-image ones
    agree = np.mean([r["label"] == per_image_labels[r["frame"] % FRAMES] for r in rows])
    assert agree >= 0.9


def test_server_killed_mid_stream_reconnects_then_gives_a_clear_error(server, engine):
    process, base = server
    client = subprocess.Popen(
        [sys.executable, "-m", "runtime.infer", "--engine", str(engine), base + "/live.ts", "--reconnect", "2"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # per-frame lines are flushed one by one; the server's own 20 s limit bounds this loop
        received = [client.stdout.readline() for _ in range(10)]
        assert all(line.startswith("{") for line in received), "no frames arrived before the kill"
        process.kill()  # the server dies mid-stream
        stdout, stderr = client.communicate(timeout=30)
    finally:
        client.kill()
    assert client.returncode == 1 and "Traceback" not in stderr, stderr
    assert f"{base}/live.ts: stream lost after" in stderr
    assert "2 reconnect attempt(s) with back-off failed (last: Connection refused)" in stderr
    assert ", 1 reconnects," in stderr, stderr  # the summary counts the lost connection


def test_unreachable_stream_is_one_clear_line(engine):
    with socket.socket() as probe:  # a port on which nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = run_cli("--engine", str(engine), f"rtsp://127.0.0.1:{port}/cam", "--reconnect", "1", timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert (
        f"rtsp://127.0.0.1:{port}/cam: stream unreachable; 1 reconnect attempt(s) with back-off failed "
        "(last: Connection refused)"
    ) in done.stderr


def test_a_live_source_behind_a_slow_sink_drops_its_oldest_frames_and_accounts_for_them(server, engine):
    import time as clock

    from runtime.model import Classifier
    from runtime.stream.pipeline import StreamOptions, StreamPipeline
    from runtime.stream.uri import parse_source

    _, base = server
    seen = []

    def slow_sink(result, image) -> None:  # 20 frames/s against a 30 frames/s camera
        seen.append(result.frame)
        clock.sleep(0.05)

    with Classifier.from_path(engine) as classifier:
        pipeline = StreamPipeline(
            classifier,
            [parse_source(base + "/live.ts")],
            StreamOptions(max_frames=60, max_batch=4, queue_size=4),
            slow_sink,
        )
        pipeline.run()
    stats = pipeline.stats[0]
    assert stats.dropped > 0 and stats.accounted and stats.error is None
    assert stats.classified == len(seen) == 60 - stats.dropped
    assert seen == sorted(seen) and seen[-1] - seen[0] + 1 > len(seen)  # in order, with gaps where frames dropped
