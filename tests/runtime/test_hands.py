"""The hand stage on real photos: MediaPipe's palm detector and landmarker as ONNX (``edge hands``, built by
``make hands`` into ``$EDGE_HANDS_DIR``), run on our ONNX Runtime backend, decoded in numpy."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from runtime.backends.table import BackendOptions, OnnxRuntimeOptions
from runtime.hands import HandFinder, HandModels, landmark_features
from runtime.spec import InputKind, ModelSpec
from tests.conftest import REPO

# Photos of asl_real/adapt (the folder that may be used for fitting and choosing) where the hand is plain to see.
PHOTOS = ("b_me369_0.jpg", "l_me369_1.jpg", "y_me369_2.jpg")


@pytest.fixture(scope="session")
def hand_models() -> Path:
    folder = os.environ.get("EDGE_HANDS_DIR")
    if not folder or not HandModels.in_folder(folder).palm.is_file():
        pytest.skip("hand models not built: run `make hands` (edge hands --out DIR) and set EDGE_HANDS_DIR=DIR")
    return Path(folder)


@pytest.fixture(scope="session")
def adapt_dir(data_dir) -> Path:
    folder = data_dir / "asl_real" / "adapt"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found (asl_real is shared evaluation data, not fetched by make data)")
    return folder


@pytest.fixture(scope="module")
def finder(hand_models):
    with HandFinder(HandModels.in_folder(hand_models), BackendOptions(OnnxRuntimeOptions(threads=1))) as found:
        yield found


def _edge(*args, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, env=env, cwd=cwd)


def test_finds_the_hand_in_real_photos(finder, adapt_dir):
    for name in PHOTOS:
        image = ImageOps.exif_transpose(Image.open(adapt_dir / name)).convert("RGB")
        hand = finder.find(image)
        assert hand is not None, name
        assert hand.landmarks.shape == (21, 3)
        left, top, right, bottom = hand.box()
        assert right - left == bottom - top > 0.2 * min(image.size)  # a square around a hand, not a speck
        inside = (hand.landmarks[:, 0] > -5) & (hand.landmarks[:, 0] < image.width + 5)
        assert inside.all(), name


def test_a_mirrored_photo_gives_mirrored_landmarks_and_the_same_features(finder, adapt_dir):
    """Decoding errors (anchor order, rotation sign, crop corners) break this symmetry."""
    image = ImageOps.exif_transpose(Image.open(adapt_dir / PHOTOS[1])).convert("RGB")
    hand = finder.find(image)
    mirrored = finder.find(ImageOps.mirror(image))
    assert hand is not None and mirrored is not None
    flipped_x = image.width - mirrored.landmarks[:, 0]
    assert np.abs(flipped_x - hand.landmarks[:, 0]).mean() < 0.03 * image.width
    assert np.abs(mirrored.landmarks[:, 1] - hand.landmarks[:, 1]).mean() < 0.03 * image.height
    assert (hand.right >= 0.5) != (mirrored.right >= 0.5)  # the landmarker sees the other hand
    a, b = landmark_features(hand.landmarks, hand.right), landmark_features(mirrored.landmarks, mirrored.right)
    assert np.abs(a - b).mean() < 0.1


def test_no_hand_in_a_photo_without_one(finder):
    rng = np.random.default_rng(0)
    assert finder.find(Image.new("RGB", (320, 240), (40, 90, 160))) is None
    assert finder.find(Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8))) is None


def test_missing_hand_models_name_the_command_that_makes_them(tmp_path):
    with pytest.raises(Exception, match=r"edge hands --out"):
        HandFinder(HandModels.in_folder(tmp_path))


def test_landmark_spec_round_trips_and_image_specs_stay_as_they_were():
    spec = ModelSpec("m", ("a", "b"), 1, 42, scale=1.0, input_kind=InputKind.HAND_LANDMARKS)
    assert ModelSpec.from_json(spec.to_json()) == spec
    assert "input_kind" not in ModelSpec("m", ("a", "b"), 28, 28).to_dict()


def test_infer_with_hands_says_no_hand_instead_of_a_letter(hand_models, adapt_dir, tmp_path, data_dir):
    """An image model (a tiny real ONNX classifier of 24 letters) behind the hand stage, as a subprocess."""
    model = _tiny_letter_model(tmp_path)
    blank = tmp_path / "wall.png"
    Image.new("RGB", (200, 160), (200, 200, 190)).save(blank)
    args = ["infer", "--engine", str(model), "--hands", "--hand-models", str(hand_models), "--json"]
    result = _edge(*args, str(adapt_dir / PHOTOS[0]), str(blank))
    assert result.returncode == 0, result.stderr
    rows = {Path(r["input"]).name: r for r in json.loads(result.stdout)["results"]}
    assert rows["wall.png"]["label"] == "no hand" and rows["wall.png"]["answered_by"] == "none"
    assert rows[PHOTOS[0]]["answered_by"] == "hand" and len(rows[PHOTOS[0]]["hand"]["box"]) == 4
    # with a fallback model the photo without a hand is read whole, and the result says so
    result = _edge(*args, "--fallback", str(model), str(blank))
    assert json.loads(result.stdout)["results"][0]["answered_by"] == "fallback"


def _tiny_letter_model(folder: Path) -> Path:
    """A 28×28 grayscale → 24 logits ONNX model (one Gemm) with an ASL-shaped spec beside it."""
    onnx = pytest.importorskip("onnx", reason="onnx builds the tiny test model (training/dev venv)")
    from onnx import TensorProto, helper, numpy_helper

    labels = tuple("abcdefghiklmnopqrstuvwxy")
    spec = ModelSpec("tiny_letters", labels, 28, 28)
    weights = np.random.default_rng(0).normal(0, 0.01, (784, 24)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 24])],
        [numpy_helper.from_array(weights, "w")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    path = folder / "tiny_letters.fp32.onnx"
    onnx.save(proto, path)
    spec.save(folder / "tiny_letters.json")
    return path


def test_a_stream_with_hands_counts_frames_without_one(hand_models, adapt_dir, tmp_path):
    pytest.importorskip("av", reason="image sequences are read by PyAV (the stream extra)")
    model = _tiny_letter_model(tmp_path)
    frames = tmp_path / "frames"
    frames.mkdir()
    photo = ImageOps.exif_transpose(Image.open(adapt_dir / PHOTOS[0])).convert("RGB").resize((320, 320))
    photo.save(frames / "0000.png")
    Image.new("RGB", (320, 320), (200, 200, 190)).save(frames / "0001.png")
    jsonl = tmp_path / "frames.jsonl"
    args = ["infer", "--engine", str(model), "--hands", "--hand-models", str(hand_models), "--json"]
    result = _edge(*args, "--jsonl", str(jsonl), str(frames / "%04d.png"))
    assert result.returncode == 0, result.stderr
    (source,) = json.loads(result.stdout)["sources"]
    assert source["classified"] == 2 and source["no_hand"] == 1
    labels = [json.loads(line)["label"] for line in jsonl.read_text().splitlines()]
    assert labels[1] == "no hand" and labels[0] != "no hand"


def test_capture_refuses_an_empty_folder_and_a_fifo(hand_models, tmp_path):
    """A capture that saved nothing from an empty folder is not a success; a FIFO is not a video (was: exit 0 with
    "saved 0 photo(s)", and a hang on the FIFO)."""
    (tmp_path / "empty").mkdir()
    os.mkfifo(tmp_path / "pipe")
    models = ["--hand-models", str(hand_models), "--out", str(tmp_path / "out")]
    empty = _edge("capture", str(tmp_path / "empty"), *models, "--json")
    assert empty.returncode == 1 and json.loads(empty.stdout)["errors"] == [
        f"{tmp_path / 'empty'}: folder holds no image files; give photos (PNG, JPEG, …)"
    ]
    fifo = _edge("capture", str(tmp_path / "pipe"), "--label", "a", *models, "--json")
    assert fifo.returncode == 2 and "Traceback" not in fifo.stderr
    assert json.loads(fifo.stdout)["error"] == (
        f"{tmp_path / 'pipe'}: is a FIFO (named pipe), expected a video file; give the path of a regular file"
    )
    assert not (tmp_path / "out").exists()
