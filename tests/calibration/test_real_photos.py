"""The real-photo evaluation (``edge evaluate``): labels from folders and names, sources from manifests, scores
through the runtime, reports through the writer; real MNIST digits in tmp folders and the real digits_real set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from calibration import real_photos
from calibration.statistics import wilson_interval
from formats.artifacts import real_photo_files
from runtime.model import Classifier
from tests.conftest import REPO

DIGITS = tuple(str(d) for d in range(10))


def _edge(*args: str, python: str = sys.executable) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [python, "-m", "edge", "evaluate", *args], capture_output=True, text=True, timeout=300, env=env, cwd=REPO
    )


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory, mnist_test) -> Path:
    """24 real MNIST test digits in both layouts: class sub-folders and <label>_<source>_<n>.png names, a
    manifest naming the sources of some, plus one file without a label and one that is not an image."""
    root = tmp_path_factory.mktemp("photos")
    (root / "scans").mkdir()
    rows = ["file,label,source"]
    for i in range(12):  # label from the file name; source from the manifest for the first 6
        label = int(mnist_test.labels[i])
        name = f"{label}_pen_{i}.png"
        Image.fromarray(mnist_test.images[i]).save(root / name)
        if i < 6:
            rows.append(f"{name},{label},writer-a")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    for i in range(12, 24):  # label from the class folder (ImageFolder), under a sub-folder
        label = int(mnist_test.labels[i])
        (root / "scans" / str(label)).mkdir(exist_ok=True)
        Image.fromarray(mnist_test.images[i]).save(root / "scans" / str(label) / f"digit{i}.png")
    Image.fromarray(mnist_test.images[0]).save(root / "unlabelled.png")
    (root / "3_broken_1.jpg").write_bytes(b"not a jpeg")
    return root


def test_labels_come_from_class_folders_and_name_prefixes(photo_folder):
    photos, skipped = real_photos.label_photos(photo_folder, DIGITS)
    by_name = {p.path.name: p for p in photos}
    assert len(photos) == 25 and [Path(f).name for f, _ in skipped] == ["unlabelled.png"]
    assert "no label" in skipped[0][1]
    first = by_name["7_pen_0.png"]  # MNIST test image 0 is a 7
    assert (first.label, first.source, first.folder) == (7, "writer-a", ".")
    assert by_name["4_pen_6.png"].source == "pen"  # not in the manifest: the middle of the name
    scan = next(p for p in photos if p.path.name == "digit12.png")
    assert (scan.folder, scan.source) == ("scans", "-")  # the class folder is not a sub-folder of its own


def test_a_label_prefix_matches_case_insensitively_when_unambiguous(tmp_path):
    Image.new("L", (8, 8)).save(tmp_path / "A_x_1.png")
    photos, _ = real_photos.label_photos(tmp_path, ("a", "b"))
    assert photos[0].label == 0
    photos, skipped = real_photos.label_photos(tmp_path, ("a", "A"))
    assert photos[0].label == 1 and not skipped  # an exact match wins over the lower-case form


def test_cli_scores_through_the_runtime_and_writes_every_report(photo_folder, trained_mnist, tmp_path):
    _, model = trained_mnist["mnist_cnn"]
    done = _edge("--model", str(model), str(photo_folder), "--out", str(tmp_path), "--json")
    assert done.returncode == 1, done.stderr  # two inputs were bad: listed, the rest scored
    doc = json.loads(done.stdout)
    assert "3_broken_1.jpg" in done.stderr and "unlabelled.png" in done.stderr
    photos, _ = real_photos.label_photos(photo_folder, DIGITS)
    good = [p for p in photos if p.path.suffix == ".png"]
    with Classifier.from_path(model) as classifier:  # what `edge infer` answers for the same files
        expected = [pred.indices[0] for pred in classifier.predict([p.path for p in good])]
    right = sum(int(e == p.label) for e, p in zip(expected, good))
    assert (doc["images"], doc["correct"]) == (24, right)
    low, high = wilson_interval(right, 24).low, wilson_interval(right, 24).high
    assert doc["ci"] == pytest.approx([low, high])
    assert {s["name"] for s in doc["by_source"]} == {"writer-a", "pen", "-"}
    assert {s["name"]: s["images"] for s in doc["by_folder"]} == {".": 12, "scans": 12}
    assert sum(s["images"] for s in doc["by_class"]) == 24
    matrix = np.asarray(doc["confusion"])
    assert matrix.shape == (10, 10) and matrix.sum() == 24 and np.trace(matrix) == right
    files = real_photo_files(model, tmp_path)
    assert files.json.name == "mnist_cnn.fp32.real.json" and json.loads(files.json.read_text())["images"] == 24
    assert "| writer-a | 6 |" in files.markdown.read_text()
    assert files.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert real_photos.read_line(tmp_path / model.name).startswith("real photos (mnist_cnn.fp32.real.json)")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "missing.onnx", "."], "missing.onnx: model file not found"),
        (["--model", "MODEL", "nowhere"], "nowhere: not a folder"),
        (["--model", "MODEL", "EMPTY"], "no labelled photos for mnist_cnn"),
    ],
)
def test_bad_input_is_one_line(args, message, trained_mnist, tmp_path):
    _, model = trained_mnist["mnist_cnn"]
    (tmp_path / "empty").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "empty" / "cat.png")
    args = [str(model) if a == "MODEL" else str(tmp_path / "empty") if a == "EMPTY" else a for a in args]
    done = _edge(*args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in done.stderr


DIGITS_REAL = Path(os.environ.get("EDGE_DATA_DIR", REPO.parent / "shared" / "data")) / "digits_real"
DEVICE_PYTHON = os.environ.get("EDGE_DEVICE_PYTHON")


@pytest.mark.skipif(not DIGITS_REAL.is_dir(), reason=f"{DIGITS_REAL} (real handwritten digit photos) not found")
def test_digits_real_in_the_device_profile(trained_mnist, tmp_path):
    """The real set, scored torch-free (the device venv where there is one); structure, not accuracy."""
    _, model = trained_mnist["mnist_cnn"]
    python = DEVICE_PYTHON if DEVICE_PYTHON and Path(DEVICE_PYTHON).is_file() else sys.executable
    done = _edge("--model", str(model), str(DIGITS_REAL), "--out", str(tmp_path), "--json", python=python)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["images"] == 142 and len(doc["by_class"]) == 10
    assert [s["name"] for s in doc["by_source"]] == sorted(
        ["hikaruikebe", "wikunia", "asheenafazal", "ericadgjl", "abhighule", "desyrani", "scholich"]
    )
    assert sum(s["images"] for s in doc["by_source"]) == 142 and np.asarray(doc["confusion"]).sum() == 142
    assert doc["line"].startswith("real photos (digits_real, 142)")
