"""Dreaming on the shipped EfficientNet-Lite0 ImageNet weights, with the course's real photos."""

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO


def _dream_cli(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "train.dream", *args], cwd=cwd, capture_output=True, text=True, timeout=240
    )


@pytest.fixture(scope="module")
def backbone():
    """The model, with torch on one thread as the CLI runs it (two spin-wait each other on a busy machine)."""
    import torch

    from train.dream import layer_table, load_backbone

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model = load_backbone()
    yield model, layer_table(model)
    torch.set_num_threads(threads)


def test_the_layer_activation_grows_and_the_image_keeps_its_size(backbone, data_dir):
    from train.dream import DreamConfig, dream

    model, layers = backbone
    photo = Image.open(data_dir / "dli_images" / "happy_dog.jpg").convert("RGB").resize((120, 80))
    image = np.array(photo)
    result = dream(model, layers["block4"], image, DreamConfig(steps=4, octaves=2, jitter=4))
    assert len(result.activations) == 2 and all(len(h) == 4 for h in result.activations)
    for history in result.activations:  # gradient ascent: each octave ends higher than it started
        assert history[-1] > history[0], result.activations
    assert result.image.shape == image.shape and result.image.dtype == np.uint8
    assert np.abs(result.image.astype(int) - image).mean() > 1  # the picture did change
    assert all(p.grad is None and not p.requires_grad for p in model.parameters())  # the weights were not trained


def test_cli_writes_a_png_of_the_input_size(data_dir, tmp_path):
    out = tmp_path / "dreams" / "a.png"
    done = _dream_cli(
        "--image", str(data_dir / "dli_images" / "A.jpg"), "--layer", "block2", "--steps", "2", "--octaves", "1",
        "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "layer block2 mean activation" in done.stdout
    written = Image.open(io.BytesIO(out.read_bytes()))
    assert written.format == "PNG" and written.size == Image.open(data_dir / "dli_images" / "A.jpg").size
    assert [p.name for p in out.parent.iterdir()] == ["a.png"]  # no temp file left beside it


def test_list_layers_prints_shallow_to_deep():
    done = _dream_cli("--list-layers")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["stem", *(f"block{i}" for i in range(16)), "head"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image", "no_such_photo.jpg", "--layer", "block6"], "no_such_photo.jpg"),
        (["--image", "{photo}", "--layer", "block99"], "--layer 'block99': no such layer; expected one of stem, "),
    ],
    ids=["missing image", "unknown layer"],
)
def test_bad_inputs_are_one_line_and_exit_2(args, message, data_dir, tmp_path):
    photo = str(data_dir / "dli_images" / "A.jpg")
    done = _dream_cli(*(a.replace("{photo}", photo) for a in args), "--out", str(tmp_path / "x.png"), cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr and message in done.stderr
    assert not (tmp_path / "x.png").exists()
