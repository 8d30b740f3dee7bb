"""The zero-shot landmark classifier ``asl_landmarks``, end to end as subprocesses on real data: a small Sign-MNIST
training file (3 real images per letter, in tmp) through ``edge train asl_landmarks`` (the real landmarker, read
from EDGE_HANDS_DIR), ``edge export``, ``edge evaluate`` through the hand stage with its "no hand" column, and
``edge train asl --adapt --from`` fine-tuning it."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from calibration import real_photos
from formats.artifacts import Artifacts, Precision
from tests.conftest import REPO
from tests.runtime.test_hands import adapt_dir, finder, hand_models  # noqa: F401  (fixtures)
from train.asl_landmarks import MODEL_NAME

PER_LETTER = 3


def _edge(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, env=env)


def _small_sign_mnist(data_dir: Path, root: Path) -> Path:
    """The first PER_LETTER rows of each label of the real training CSV, as <root>/sign_mnist/…train.csv."""
    kept, counts = [], {}
    with gzip.open(data_dir / "sign_mnist" / "sign_mnist_train.csv.gz", "rt") as fh:
        header = next(fh)
        for line in fh:
            label = line.split(",", 1)[0]
            if counts.get(label, 0) < PER_LETTER:
                counts[label] = counts.get(label, 0) + 1
                kept.append(line)
            if len(counts) == 24 and all(n == PER_LETTER for n in counts.values()):
                break
    (root / "sign_mnist").mkdir(parents=True)
    (root / "sign_mnist" / "sign_mnist_train.csv").write_text(header + "".join(kept))
    return root


def test_the_landmarker_alone_reads_sign_mnist_hand_crops(data_dir, finder):  # noqa: F811
    """One real training image per letter, upscaled: the palm detector finds ~3 % of them, find_in_crop most."""
    from train.data.sign_mnist import load_sign_mnist_file

    split = load_sign_mnist_file(data_dir / "sign_mnist" / "sign_mnist_test.csv.gz")
    first = [int(np.nonzero(split.labels == c)[0][0]) for c in range(24)]
    found = 0
    for i in first:
        image = Image.fromarray(split.images[i]).resize((224, 224), Image.Resampling.BICUBIC)
        hand = finder.find_in_crop(image)
        if hand is not None:
            found += 1
            assert hand.landmarks.shape == (21, 3) and hand.presence >= 0.5
            assert np.all((hand.landmarks[:, :2] > -60) & (hand.landmarks[:, :2] < 284))  # near the crop
    assert found >= 20


def test_a_report_through_the_hand_stage_counts_no_hand_as_wrong():
    photos = [real_photos.Photo(Path(f"{c}_s{n % 2}_{n}.jpg"), c, f"s{n % 2}", ".") for n, c in enumerate((0, 1, 2, 2))]
    predicted = np.array([0, real_photos.NO_HAND, 1, 2])
    report = real_photos.RealPhotoReport(
        "m", "m.onnx", "root", ("a", "b", "c"), photos, predicted, np.ones(4), [], True
    )
    assert report.overall.correct == 2 and report.on_found_hands().text().startswith("66.7% (2/3")
    assert report.columns == ("a", "b", "c", "no hand") and report.confusion()[1, 3] == 1
    assert report.no_hand_by_source() == {"s0": 0, "s1": 1}
    doc = report.to_dict()
    assert doc["no_hand"] == 1 and doc["predictions"][1]["predicted"] == "no hand"
    assert "no hand found in 1 photos" in report.markdown() and "b → no hand: 1" in report.markdown()


@pytest.mark.slow  # train, export, evaluate, adapt as subprocesses: ~6 min on the loaded 2-core box (~1 min idle?)
def test_zero_shot_from_sign_mnist_then_export_then_evaluate_with_no_hand(
    tmp_path,
    data_dir,
    hand_models,  # noqa: F811
    adapt_dir,  # noqa: F811
):
    data = _small_sign_mnist(data_dir, tmp_path / "data")
    out = tmp_path / "model"
    args = ("--out", str(out), "--hands", str(hand_models), "--data-dir", str(data), "--per-class", "2")
    result = _edge("train", "asl_landmarks", *args)
    assert result.returncode == 0, result.stderr
    names = Artifacts(out, MODEL_NAME)
    metrics = json.loads(names.metrics.read_text())
    assert metrics["images"] == 48 and metrics["hands_found"] >= 40  # the landmarker reads Sign-MNIST's hands
    assert sum(metrics["hands_found_per_class"].values()) == metrics["hands_found"]
    assert "zero-shot" in metrics["data"]

    result = _edge("export", "--checkpoint", str(names.checkpoint), "--out", str(out))
    assert result.returncode == 0, result.stderr

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("b_me369_0.jpg", "l_me369_0.jpg"):
        (photos / name).symlink_to(adapt_dir / name)
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(photos / "y_wall_0.png")  # no hand: counted wrong
    model = names.onnx(Precision.FP32)
    result = _edge("evaluate", "--model", str(model), "--hand-models", str(hand_models), "--json", str(photos))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["hand_stage"] and report["images"] == 3 and report["no_hand"] == 1
    assert report["no_hand_by_source"] == {"me369": 0, "wall": 1}
    assert report["confusion_columns"][-1] == "no hand" and report["confusion"][-1][-1] == 1  # y → no hand
    wall = next(p for p in report["predictions"] if p["source"] == "wall")
    assert wall["predicted"] == "no hand" and wall["probability"] == 0.0
    assert report["correct"] <= 2 and report["on_found_hands"]["images"] == 2
    assert "no hand in 1 (counted wrong)" in report["line"]

    adapted = tmp_path / "adapted"  # fine-tuned from the zero-shot model on the two photos with a hand
    args = ("--adapt", str(photos), "--from", str(names.checkpoint), "--hands", str(hand_models), "--out", str(adapted))
    result = _edge("train", "asl", *args)
    assert result.returncode == 0, result.stderr
    metrics = json.loads(Artifacts(adapted, "asl_landmarks_adapted").metrics.read_text())
    assert metrics["start"] == str(names.checkpoint) and metrics["hands_found"] == 2 and len(metrics["no_hand"]) == 1
    bad = ("--adapt", str(photos), "--from", str(photos / "y_wall_0.png"), "--hands", str(hand_models))
    result = _edge("train", "asl", *bad, "--out", str(tmp_path / "bad"))
    assert result.returncode != 0 and "not a readable checkpoint" in result.stderr
