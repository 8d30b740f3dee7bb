"""Adapting to a user's own hands, end to end as subprocesses: ``edge capture`` crops the hands of labelled photos,
``edge train asl --adapt`` fits the landmark classifier on that folder, ``edge export`` makes its ONNX, and
``edge infer`` reads letters through the hand stage. Photos from asl_real/adapt only (linked into tmp)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from formats.artifacts import Artifacts, Precision
from tests.conftest import REPO
from tests.runtime.test_hands import adapt_dir, hand_models  # noqa: F401  (fixtures)
from train.landmarks import MODEL_NAME, FitConfig, augmented, labelled_photos

LETTERS = ("b", "l", "y")


def _edge(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, env=env)


def _photos(folder: Path, adapt: Path, per_letter: int) -> Path:
    for letter in LETTERS:
        (folder / letter).mkdir(parents=True)
        for n in range(per_letter):
            (folder / letter / f"me369_{n}.jpg").symlink_to(adapt / f"{letter}_me369_{n}.jpg")
    return folder


def test_capture_writes_square_hand_crops_by_label(tmp_path, hand_models, adapt_dir):  # noqa: F811
    photos = _photos(tmp_path / "photos", adapt_dir, 1)
    Image.new("RGB", (160, 120), (90, 90, 90)).save(photos / "b" / "wall.png")
    mine = tmp_path / "my_hands"
    result = _edge("capture", "--out", str(mine), "--hand-models", str(hand_models), "--json", str(photos))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["no_hand"] == 1  # the wall
    assert report["saved"] == {letter: 1 for letter in LETTERS}
    saved = sorted(mine.rglob("*.jpg"))
    assert [p.parent.name for p in saved] == list(LETTERS)
    assert all(Image.open(p).size[0] == Image.open(p).size[1] for p in saved)  # square hand crops
    result = _edge("capture", "--out", str(mine), "--hand-models", str(hand_models), str(adapt_dir / "b_me369_0.jpg"))
    assert result.returncode == 2 and "no label" in result.stderr  # a single photo needs --label


@pytest.mark.slow  # ~1 min unloaded (torch import, ONNX export); several on the shared 2-core box
def test_capture_then_adapt_then_export_then_infer(tmp_path, hand_models, adapt_dir):  # noqa: F811
    mine = tmp_path / "my_hands"
    photos = _photos(tmp_path / "photos", adapt_dir, 3)
    result = _edge("capture", "--out", str(mine), "--hand-models", str(hand_models), "--json", str(photos))
    assert result.returncode == 0, result.stderr

    out = tmp_path / "model"
    result = _edge("train", "asl", "--adapt", str(mine), "--hands", str(hand_models), "--out", str(out))
    assert result.returncode == 0, result.stderr
    names = Artifacts(out, MODEL_NAME)
    metrics = json.loads(names.metrics.read_text())
    assert metrics["hands_found"] >= 8 and metrics["fit_accuracy"] > 0.9

    result = _edge("export", "--checkpoint", str(names.checkpoint), "--out", str(out))
    assert result.returncode == 0, result.stderr
    probe = adapt_dir / "y_me369_5.jpg"  # a photo the model did not see
    args = ("infer", "--engine", str(names.onnx(Precision.FP32)), "--hand-models", str(hand_models), "--json")
    result = _edge(*args, str(probe))
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)["results"]
    assert row["answered_by"] == "hand" and row["label"] in LETTERS


def test_labels_come_from_folders_or_file_names(tmp_path, adapt_dir):  # noqa: F811
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jpg").symlink_to(adapt_dir / "a_me369_0.jpg")
    (tmp_path / "c_me369_0.jpg").symlink_to(adapt_dir / "c_me369_0.jpg")
    found = {(p.name, label, group) for p, label, group in labelled_photos(tmp_path, tuple("abc"))}
    assert found == {("x.jpg", 0, "all"), ("c_me369_0.jpg", 2, "me369")}
    with pytest.raises(Exception, match="no photo labelled"):
        labelled_photos(tmp_path / "a", tuple("pq"))


def test_augmentation_keeps_the_wrist_and_the_hand_size():
    rng = np.random.default_rng(0)
    hand = rng.normal(0, 50, (21, 3)).astype(np.float32) + 200
    for copy in augmented(hand, rng, FitConfig(copies=5))[1:]:
        assert np.allclose(copy[0, :2], hand[0, :2], atol=5)
        ratio = np.linalg.norm(copy[9, :2] - copy[0, :2]) / np.linalg.norm(hand[9, :2] - hand[0, :2])
        assert 0.8 < ratio < 1.2
