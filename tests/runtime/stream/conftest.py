"""Real encoded videos made from real MNIST test digits at known indices (PyAV encodes, the runtime decodes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO

FRAMES = 60  # test digits 0..59, one per frame
SIZE = (112, 112)  # 4× the digit: 4:2:0 chroma and 16-pixel macroblocks keep it legible


@pytest.fixture(scope="session")
def clips(tmp_path_factory, mnist_test) -> dict[str, Path]:
    """The same 60 digits as H.264 (.mp4), MJPEG (.avi), VP9 (.webm) and H.265 (.mkv)."""
    from benchmarks.stream import write_video

    folder = tmp_path_factory.mktemp("clips")
    images = mnist_test.images[:FRAMES]
    return {
        "h264": write_video(folder / "digits.mp4", images, "libx264", SIZE),
        "mjpeg": write_video(folder / "digits.avi", images, "mjpeg", SIZE),
        "vp9": write_video(folder / "digits.webm", images, "libvpx-vp9", SIZE),
        "h265": write_video(folder / "digits.mkv", images, "libx265", SIZE),
    }


@pytest.fixture(scope="session")
def engine(trained_mnist) -> Path:
    return trained_mnist["mnist_cnn"][1]


@pytest.fixture(scope="session")
def per_image_labels(engine, mnist_test) -> list[str]:
    """What the model says for each original digit, classified as an image (no codec in between)."""
    from runtime.model import Classifier

    with Classifier.from_path(engine) as classifier:
        return [p.label for p in classifier.predict(list(mnist_test.images[:FRAMES]))]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m runtime.infer ARGS`` as users run it."""
    return subprocess.run(
        [sys.executable, "-m", "runtime.infer", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def by_source(rows: list[dict]) -> dict[str, dict[int, dict]]:
    out: dict[str, dict[int, dict]] = {}
    for row in rows:
        assert row["frame"] not in out.setdefault(row["source"], {}), "a frame was reported twice"
        out[row["source"]][row["frame"]] = row
    return out


def labels(mnist_test) -> np.ndarray:
    return np.asarray(mnist_test.labels[:FRAMES]).astype(str)
