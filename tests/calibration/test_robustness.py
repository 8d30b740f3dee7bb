"""The camera-like re-shot renderer and the robustness evaluation through the runtime (real model, real files)."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from calibration import robustness
from calibration.render import ALL, ASPECTS, DEFAULT_SIDE, Perturbation, draw_params, edge_colour, render
from runtime.spec import ModelSpec
from tests.conftest import REPO
from train.cards import load_split

P = Perturbation


def _decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def _pixels(active, image, index=3, seed=0) -> np.ndarray:
    return np.asarray(_decode(render(image, active, seed, index)[0]).convert("RGB"), dtype=np.float64)


@pytest.fixture(scope="module")
def square() -> np.ndarray:
    """A bright 10×10 square in the middle of a dark 28×28 image."""
    image = np.full((28, 28), 20, np.uint8)
    image[9:19, 9:19] = 230
    return image


@pytest.fixture(scope="module")
def bar() -> np.ndarray:
    """A bright horizontal bar across a dark 28×28 image (its angle shows a rotation)."""
    image = np.full((28, 28), 20, np.uint8)
    image[12:16, 4:24] = 230
    return image


def _bright(pixels: np.ndarray) -> np.ndarray:
    return pixels.mean(axis=2) > 125


def test_same_seed_same_bytes_other_seed_other_bytes(square):
    first = render(square, ALL, seed=7, index=11)
    assert render(square, ALL, seed=7, index=11) == first
    assert render(square, ALL, seed=8, index=11)[0] != first[0]
    assert render(square, ALL, seed=7, index=12)[0] != first[0]
    assert first[1] == "jpeg" and render(square, [], 7, 11)[1] == "png"


def test_unperturbed_shot_is_the_image_scaled_up(square):
    pixels = _pixels([], square)
    assert pixels.shape == (DEFAULT_SIDE, DEFAULT_SIDE, 3)
    small = np.asarray(Image.fromarray(pixels.astype(np.uint8)).convert("L").resize((28, 28), Image.BILINEAR))
    assert np.abs(small.astype(int) - square.astype(int)).mean() < 6


def test_rotation_turns_the_subject_by_the_drawn_angle(bar):
    angle = draw_params(0, 3).angle
    ys, xs = np.nonzero(_bright(_pixels([P.ROTATION], bar)))
    cov = np.cov(np.stack([xs, ys]))  # y down, as displayed: a clockwise turn is a positive angle
    measured = math.degrees(0.5 * math.atan2(2 * cov[0, 1], cov[0, 0] - cov[1, 1]))
    assert abs(angle) > 1 and abs(measured - angle) < 1.5, (measured, angle)


def test_offset_moves_the_subject_by_the_drawn_fraction(square):
    dx, dy = draw_params(0, 3).offset
    ys, xs = np.nonzero(_bright(_pixels([P.OFFSET], square)))
    assert abs((xs.mean() - DEFAULT_SIDE / 2) / DEFAULT_SIDE - dx) < 0.01
    assert abs((ys.mean() - DEFAULT_SIDE / 2) / DEFAULT_SIDE - dy) < 0.01


def test_zoom_scales_the_subject(square):
    zoom = draw_params(0, 3).zoom
    base = _bright(_pixels([], square)).sum()
    zoomed = _bright(_pixels([P.ZOOM], square)).sum()
    assert abs(math.sqrt(zoomed / base) - zoom) < 0.03


def test_frame_widens_to_the_aspect_with_edge_colour_and_noise(square):
    for index in range(6):
        params = draw_params(0, index)
        pixels = _pixels([P.FRAME], square, index)
        h, w = pixels.shape[:2]
        assert min(h, w) == DEFAULT_SIDE and abs(w / h - params.aspect[0] / params.aspect[1]) < 0.01
        assert params.aspect in ASPECTS
    wall = pixels[:, :10] if w > h else pixels[:10]  # outside the centred square subject
    assert abs(wall.mean() - edge_colour(square).mean()) < 2 and 3 < wall.std() < 9


def test_lighting_is_a_gradient_of_the_drawn_strength():
    flat = np.full((28, 28), 128, np.uint8)
    params = draw_params(0, 3)
    lit = _pixels([P.LIGHTING], flat)[..., 0]
    h, w = lit.shape
    xs, ys = np.meshgrid(np.arange(w) - w / 2, np.arange(h) - h / 2)
    along = (xs * math.cos(params.gradient_direction) + ys * math.sin(params.gradient_direction)) / max(h, w)
    slope = np.polyfit(along.ravel(), lit.ravel(), 1)[0]
    assert abs(slope / 128 - params.gradient) < 0.03


def test_tint_scales_each_channel():
    flat = np.full((28, 28), 128, np.uint8)
    tint = draw_params(0, 3).tint
    means = _pixels([P.TINT], flat).reshape(-1, 3).mean(axis=0)
    assert np.allclose(means / 128, tint, atol=0.01)


def test_blur_removes_fine_detail(square):
    def edges(pixels):
        return np.abs(np.diff(pixels.mean(axis=2), axis=1)).max()

    assert edges(_pixels([P.BLUR], square)) < 0.5 * edges(_pixels([], square))


def test_noise_has_the_drawn_sigma():
    flat = np.full((28, 28), 128, np.uint8)
    noisy = _pixels([P.NOISE], flat)
    assert abs(noisy.std() - draw_params(0, 3).noise) < 0.5


def test_jpeg_and_resolution(square):
    data, kind = render(square, [P.JPEG], 0, 3)
    assert kind == "jpeg" and _decode(data).format == "JPEG"
    for index in range(5):
        side = draw_params(0, index).side
        assert 96 <= side <= 640 and min(_decode(render(square, [P.RESOLUTION], 0, index)[0]).size) == side


def test_evaluation_runs_an_exported_model_through_the_runtime(trained_mnist, data_dir, tmp_path):
    onnx_path = trained_mnist["mnist_cnn"][1]
    conditions = (("rotation", frozenset({P.ROTATION})), ("all", ALL))
    report = robustness.evaluate(onnx_path, data_dir, samples=24, keep=tmp_path / "shots", conditions=conditions)
    assert report.clean_images == 10_000 and report.clean_accuracy > 0.9
    assert [c.name for c in report.conditions] == ["rotation", "all"] and report.combined.images == 24
    # The same files through `python -m runtime.infer`: the report counts exactly what the CLI predicts.
    done = subprocess.run(
        [sys.executable, "-m", "runtime.infer", "--engine", str(onnx_path), str(tmp_path / "shots" / "all"), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    labels = load_split(ModelSpec.load(onnx_path.parent / "mnist_cnn.json"), data_dir, "test").labels
    predicted = {r["input"]: int(r["top_k"][0]["index"]) for r in json.loads(done.stdout)["results"]}
    correct = sum(int(p == labels[int(name.rsplit("/", 1)[1].split(".")[0])]) for name, p in predicted.items())
    assert len(predicted) == 24 and correct == report.combined.correct
    assert all(name.endswith(".jpg") for name in predicted)


def test_cli_writes_reports_beside_the_model_and_json(trained_mnist, data_dir, tmp_path):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(trained_mnist["mnist_mlp"][1].parent, folder)
    model = folder / "mnist_mlp.fp32.onnx"
    args = [sys.executable, "-m", "calibration.robustness", "--model", str(model), "--data-dir", str(data_dir)]
    done = subprocess.run([*args, "--samples", "4", "--json"], cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert [c["name"] for c in doc["conditions"]] == [p.value for p in Perturbation] + ["all"]
    assert doc["samples_per_condition"] == 4 and doc["clean"]["images"] == 10_000
    saved = json.loads((folder / "mnist_mlp.fp32.robustness.json").read_text())
    assert saved["conditions"] == doc["conditions"]
    assert "| all | 4 |" in (folder / "mnist_mlp.fp32.robustness.md").read_text()
    assert robustness.read_line(model).startswith("robustness (mnist_mlp.fp32.robustness.json): clean")
    missing = subprocess.run(
        [*args[:4], str(folder / "nope.onnx"), "--json"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "nope.onnx" in json.loads(missing.stdout)["error"] and len(missing.stderr.strip().splitlines()) == 1
