"""The stream path as users run it: a subprocess per case — output, Ctrl-C, cameras, missing decoders, usage."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.runtime.stream.conftest import read_jsonl, run_cli

# PyAV comes with the stream extra (`make install` installs it through dev); without it these tests skip
av = pytest.importorskip("av", reason="PyAV is not installed: pip install '.[stream]'")


def test_jsonl_on_stdout_and_the_summary_on_stderr(engine, clips):
    done = run_cli("--engine", str(engine), str(clips["h264"]), "--max-frames", "5", "--top-k", "2")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["frame"] for r in rows] == [0, 1, 2, 3, 4]
    assert set(rows[0]) >= {"source", "stream", "frame", "pts", "label", "probability", "top_k", "latency_ms"}
    assert "5 frame(s) classified" in done.stderr and "stage share: decode" in done.stderr
    assert "\r" not in done.stderr  # the live line is for terminals only


def test_ctrl_c_finishes_frames_in_flight_flushes_and_prints_the_summary(engine, clips, tmp_path):
    out = tmp_path / "loop.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runtime.infer",
            "--engine",
            str(engine),
            str(clips["h264"]),
            str(clips["mjpeg"]),
            "--loop",
            "--json",
            "--jsonl",
            str(out),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list(tmp_path.glob(".loop.jsonl.*")):
            time.sleep(0.05)
        time.sleep(1.0)  # looping by now
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in stderr
    doc = json.loads(stdout)
    assert doc["interrupted"] and doc["classified"] > 0
    assert all(s["accounted"] and s["dropped"] == 0 for s in doc["sources"])  # files never drop
    assert len(read_jsonl(out)) == doc["classified"]  # every classified frame reached the flushed file


def test_missing_camera_is_one_line_naming_the_device_and_the_fix(engine):
    if Path("/dev/video0").exists():
        pytest.skip("this machine has a /dev/video0")
    done = run_cli("--engine", str(engine), "/dev/video0", "v4l2:///dev/video0?width=640&height=480&fps=30")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "/dev/video0: no such camera; list cameras with `v4l2-ctl --list-devices`" in done.stderr
    assert "v4l2:///dev/video0?width=640&height=480&fps=30: no such camera" in done.stderr


def test_gstreamer_without_opencv_is_one_line(engine):
    try:
        import cv2  # noqa: F401

        pytest.skip("OpenCV is installed here")
    except ImportError:
        pass
    done = run_cli("--engine", str(engine), "csi://0")
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0
    assert "csi://0: GStreamer pipelines need OpenCV built with GStreamer" in done.stderr


def test_without_pyav_video_names_the_extra_and_images_still_work(engine, clips, tmp_path, mnist_test):
    from PIL import Image

    Image.fromarray(mnist_test.images[0]).save(tmp_path / "d.png")
    code = (
        "import sys; sys.modules['av'] = None; from runtime.infer import main; "  # None: `import av` fails
        "sys.exit(main(sys.argv[1:]))"
    )
    video = subprocess.run(
        [sys.executable, "-c", code, "--engine", str(engine), str(clips["h264"])],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert video.returncode == 2
    assert video.stderr.strip() == (
        "error: video, camera and network sources need PyAV: pip install '.[stream]' (or pip install av)"
    )
    image = subprocess.run(
        [sys.executable, "-c", code, "--engine", str(engine), str(tmp_path / "d.png")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert image.returncode == 0 and image.stdout.startswith(f"{tmp_path / 'd.png'}: ")


@pytest.mark.parametrize(
    "args, message",
    [
        (["IMAGES", "CLIP"], "image files and folders cannot be mixed with video, camera or network sources"),
        (["CLIP", "--roi", "1,2,3"], "--roi '1,2,3': expected x,y,w,h in pixels"),
        (["v4l2:///dev/video0?width=640"], "give width and height together"),
        (["foo://x"], "unknown source scheme 'foo'"),
        (["CLIP", "--annotate", "out.gif"], "--annotate out.gif: unknown video suffix"),
    ],
)
def test_usage_errors_exit_2_with_one_line(engine, clips, tmp_path, args, message):
    args = [str(clips["h264"]) if a == "CLIP" else str(tmp_path) if a == "IMAGES" else a for a in args]
    done = run_cli("--engine", str(engine), *args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_the_live_line_shows_on_a_terminal(engine, clips, tmp_path):
    import os
    import pty

    leader, follower = pty.openpty()  # a real terminal for stderr
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runtime.infer",
                "--engine",
                str(engine),
                str(clips["h264"]),
                "--loop",
                "--max-frames",
                "1200",
                "--jsonl",
                str(tmp_path / "frames.jsonl"),  # never a system path: tests write only in their tmp folders
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=follower,
        )
        os.close(follower)
        seen = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the program ended and closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(timeout=60) == 0
    finally:
        os.close(leader)
    text = seen.decode(errors="replace")
    live = text.split("1200 frame(s) classified")[0]  # what came before the final summary
    assert "\r" in live and "digits.mp4 " in live and " fps" in live and "p50" in live


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="making a device node needs root")
def test_jsonl_into_a_character_device_writes_to_it_and_keeps_it_a_device(engine, clips, tmp_path):
    # A twin of /dev/null inside tmp_path: the headline of issue 21 was `--jsonl /dev/null` renaming a regular
    # file over the device, as root, for the whole machine.
    node = tmp_path / "null"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    done = run_cli("--engine", str(engine), str(clips["h264"]), "--max-frames", "3", "--jsonl", str(node))
    assert done.returncode == 0, done.stderr
    assert stat.S_ISCHR(os.stat(node).st_mode)
    assert not list(tmp_path.glob(".null.*"))  # no temp file left beside it


def test_jsonl_into_a_fifo_streams_lines_to_the_reader(engine, clips, tmp_path):
    fifo = tmp_path / "frames.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.infer", "--engine", str(engine), str(clips["h264"]), "--max-frames", "4"]
        + ["--jsonl", str(fifo)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    with open(fifo) as reader:  # blocks until the CLI opens the FIFO for writing
        lines = reader.read().splitlines()
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert [json.loads(line)["frame"] for line in lines] == [0, 1, 2, 3]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
