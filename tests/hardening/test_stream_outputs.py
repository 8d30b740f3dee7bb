"""Stream outputs go through the one writer (issue 21, finding 1), as users run them (``python -m runtime.infer``):
``--jsonl``/``--annotate`` never replace an input of the run (the model, the input video), a file of another kind
needs ``--force``, and a FIFO or character device is written into, never replaced. Also finding 10: an existing
video whose name holds glob or printf characters is that file, not a sequence pattern."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from tests.hardening.tiny_models import write_model

pytest.importorskip("av", reason="PyAV is not installed: pip install '.[stream]'")

PNG = b"\x89PNG\r\n\x1a\na holiday photo"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    from benchmarks.stream import write_video

    root = tmp_path_factory.mktemp("stream_world")
    digits = [np.full((28, 28), 40 * i, np.uint8) for i in range(4)]
    return {"model": write_model(root / "m"), "clip": write_video(root / "clip.mp4", digits, "libx264", (32, 32))}


def infer(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "runtime.infer", *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env
    )


def one_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def base(world) -> list[str]:
    return ["--engine", str(world["model"]), str(world["clip"]), "--max-frames", "2"]


@pytest.mark.parametrize("option", ["--jsonl", "--annotate"])
def test_an_input_of_the_run_is_never_an_output_not_even_with_force(world, tmp_path, option):
    before = {name: path.read_bytes() for name, path in world.items()}
    targets = (world["model"], world["clip"]) if option == "--jsonl" else (world["clip"],)  # (.onnx: no video)
    for target in targets:
        line = one_error(infer(*base(world), option, str(target), "--force", cwd=tmp_path))
        assert f"{target}: is an input of this run" in line and "give another output path" in line, line
    assert {name: path.read_bytes() for name, path in world.items()} == before


def test_a_file_of_another_kind_needs_force_and_a_rerun_needs_none(world, tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(PNG)
    line = one_error(infer(*base(world), "--jsonl", str(photo), cwd=tmp_path))
    assert "photo.png: already exists and looks like a PNG image, not per-frame JSON Lines" in line
    assert "pass --force" in line and photo.read_bytes() == PNG
    video = tmp_path / "out.mp4"
    video.write_text("my notes\n")
    line = one_error(infer(*base(world), "--annotate", str(video), "--json", cwd=tmp_path))
    assert "out.mp4: already exists and looks like a text file, not an annotated video" in line
    forced = infer(*base(world), "--jsonl", str(photo), "--annotate", str(video), "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    again = infer(*base(world), "--jsonl", str(photo), "--annotate", str(video), "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr  # our own outputs are replaced without --force
    assert [json.loads(row)["frame"] for row in photo.read_text().splitlines()] == [0, 1]
    assert video.read_bytes()[4:8] == b"ftyp"


def test_the_same_file_for_both_outputs_is_a_usage_error(world, tmp_path):
    line = one_error(infer(*base(world), "--jsonl", "x.mkv", "--annotate", "./x.mkv", cwd=tmp_path))
    assert "--jsonl and --annotate both name x.mkv" in line


def _device_twin(folder: Path) -> Path:
    """A character device like /dev/null (1, 3) inside the test's folder: never a system path."""
    node = folder / "null"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs root (CI and this machine run tests as root)")
    return node


def test_a_character_device_is_written_into_never_replaced(world, tmp_path):
    node = _device_twin(tmp_path)
    done = infer(*base(world), "--jsonl", str(node), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    annotated = infer(*base(world), "--annotate", str(node), "--json", cwd=tmp_path)
    assert annotated.returncode in (0, 2) and "Traceback" not in annotated.stderr, annotated.stderr
    assert stat.S_ISCHR(os.stat(node).st_mode), "the device node was replaced by a regular file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]  # no temp file beside it


def test_a_fifo_is_written_into_and_a_reader_gets_every_line(world, tmp_path):
    fifo = tmp_path / "frames.jsonl"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.extend(fifo.read_text().splitlines()), daemon=True)
    reader.start()
    done = infer(*base(world), "--jsonl", str(fifo), "--json", cwd=tmp_path)
    reader.join(timeout=30)
    assert done.returncode == 0, done.stderr
    assert [json.loads(row)["frame"] for row in received] == [0, 1]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.parametrize("name", ["clip[1].mp4", "a?b.mp4", "take%d.mp4"])
def test_an_existing_video_named_like_a_pattern_is_that_file(world, tmp_path, name):  # finding 10
    clip = tmp_path / name
    shutil.copy(world["clip"], clip)
    done = infer("--engine", str(world["model"]), str(clip), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["classified"] == 4


def test_video_frames_share_the_pixel_bound_of_images(world, tmp_path):  # finding 6
    from PIL import Image

    from formats.cli import MAX_PIXELS

    assert MAX_PIXELS == Image.MAX_IMAGE_PIXELS  # one bound: preprocess refuses larger images through Pillow's
    side = 9472  # 89.7 million pixels: just over the bound, and cheap to write as a flat JPEG
    Image.new("L", (side, side)).save(tmp_path / "big_001.jpg", quality=10)
    os.link(tmp_path / "big_001.jpg", tmp_path / "big_002.jpg")
    done = infer("--engine", str(world["model"]), str(tmp_path / "big_%03d.jpg"), "--json", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    doc = json.loads(done.stdout)
    assert doc["classified"] == 0, doc
    assert f"frames of {side}x{side} pixels, over the {MAX_PIXELS}-pixel bound" in doc["errors"][0], doc


def test_an_undecodable_image_of_a_sequence_is_named_and_keeps_its_number(world, tmp_path):  # finding 11
    from PIL import Image

    for i in range(1, 7):
        Image.fromarray(np.full((28, 28), 30 * i, np.uint8)).save(tmp_path / f"f{i:03d}.png")
    for bad in ("f003.png", "f006.png"):  # one in the middle, and the last one (was dropped silently)
        (tmp_path / bad).write_bytes(b"not a PNG")
    for pattern in ("f%03d.png", "*.png"):
        done = infer("--engine", str(world["model"]), str(tmp_path / pattern), cwd=tmp_path)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert [json.loads(row)["frame"] for row in done.stdout.splitlines()] == [0, 1, 3, 4]
        for index, name in ((2, "f003.png"), (5, "f006.png")):
            assert f"image {index} ({tmp_path / name}) is undecodable" in done.stderr, done.stderr


def test_terminal_escapes_in_a_source_name_are_shown_escaped(world, tmp_path):  # finding 16
    done = infer("--engine", str(world["model"]), str(tmp_path / "gone\x1b[2J.mp4"), cwd=tmp_path)
    assert done.returncode == 1 and "\x1b" not in done.stderr, repr(done.stderr)
    assert "gone\\x1b[2J.mp4: " in done.stderr, done.stderr


def test_annotate_of_a_1x1_video_is_one_line_and_keeps_the_earlier_output(world, tmp_path):  # finding 15
    from benchmarks.stream import write_video

    good = tmp_path / "out.mp4"
    done = infer(*base(world), "--annotate", str(good), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    before = good.read_bytes()
    tiny = write_video(tmp_path / "tiny.avi", [np.zeros((1, 1), np.uint8)] * 2, "mjpeg", (1, 1))
    done = infer("--engine", str(world["model"]), str(tiny), "--annotate", str(good), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "unexpected" not in done.stderr, done.stderr
    assert "the first frame is 1x1 pixels; the video encoder needs at least 2x2" in done.stderr, done.stderr
    assert good.read_bytes() == before  # the failed run did not replace the good video
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
