"""asl_effnet: the registry entry, ``train asl_effnet`` on a few real Sign-MNIST rows, and ``--adapt DIR``.

Tiny throwaway runs (random backbone, 32 px, a few dozen rows): they prove the card/CLI path, not accuracy.
Nothing from asl_real is used: the adapt folder is built in tmp_path from Sign-MNIST test rows.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from runtime.spec import ColorMode
from train.__main__ import main as train_main
from train.cards.registry import get_card
from train.checkpoint import load_checkpoint
from train.data.labelled_photos import load_labelled_photos
from train.data.sign_mnist import ASL_LABELS, load_sign_mnist_file
from train.errors import DataError
from train.photo_augment import PhotoAugment, hand_mask, photo_augmentation

TINY = ["--weights", "none", "--image-size", "32", "--batch-size", "16", "--no-progress"]


def _csv(data_dir: Path, split: str, rows: int, out: Path) -> Path:
    with gzip.open(data_dir / "sign_mnist" / f"sign_mnist_{split}.csv.gz", "rt") as f:
        lines = [next(f) for _ in range(rows + 1)]
    out.write_text("".join(lines))
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir) -> Path:
    tmp = tmp_path_factory.mktemp("asl_effnet")
    train_csv, test_csv = _csv(data_dir, "train", 48, tmp / "train.csv"), _csv(data_dir, "test", 16, tmp / "test.csv")
    argv = ["asl_effnet", "--out", str(tmp / "out"), "--train-csv", str(train_csv), "--test-csv", str(test_csv)]
    assert train_main(argv + TINY) == 0
    return tmp


def test_train_writes_a_grayscale_checkpoint_of_the_registered_model(trained):
    ckpt = load_checkpoint(trained / "out" / "asl_effnet.pt")
    assert ckpt.model_name == "asl_effnet" and ckpt.spec.labels == ASL_LABELS
    assert ckpt.spec.color_mode is ColorMode.GRAY and ckpt.spec.input_shape == (1, 32, 32)
    metrics = json.loads((trained / "out" / "asl_effnet.metrics.json").read_text())
    assert metrics["train_images"] == 48 and metrics["test"]["images"] == 16
    assert metrics["weights"] == "none" and metrics["augmentation"]["background_p"] == PhotoAugment().background_p


def _photo_folder(data_dir: Path, root: Path, by_folder: bool) -> int:
    rows = load_sign_mnist_file(data_dir / "sign_mnist" / "sign_mnist_test.csv.gz")
    for i in range(12):
        letter = ASL_LABELS[rows.labels[i]]
        path = root / letter / f"{i}.png" if by_folder else root / f"{letter}_{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rows.images[i]).convert("RGB").resize((60, 80)).save(path)
    return 12


@pytest.mark.parametrize("by_folder", [True, False])
def test_adapt_fine_tunes_on_a_photo_folder_and_names_the_model_adapted(trained, data_dir, tmp_path, by_folder):
    n = _photo_folder(data_dir, tmp_path / "photos", by_folder)
    argv = ["asl_effnet", "--adapt", str(tmp_path / "photos"), "--from", str(trained / "out" / "asl_effnet.pt")]
    assert train_main(argv + ["--out", str(tmp_path / "adapted"), "--adapt-epochs", "2", *TINY]) == 0
    ckpt = load_checkpoint(tmp_path / "adapted" / "asl_effnet_adapted.pt")
    assert ckpt.model_name == "asl_effnet_adapted" and ckpt.spec.name == "asl_effnet_adapted"
    report = json.loads((tmp_path / "adapted" / "asl_effnet_adapted.metrics.json").read_text())
    assert report["train_images"] == n and len(report["history"]) == 2
    start = load_checkpoint(trained / "out" / "asl_effnet.pt").model.state_dict()
    changed = [k for k, v in ckpt.model.state_dict().items() if not torch.equal(v, start[k])]
    assert changed  # the weights moved


def test_adapt_without_a_start_and_unknown_labels_are_clear_errors(trained, tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    Image.new("L", (40, 40)).save(tmp_path / "photos" / "j_0.png")  # j moves: not a static letter
    assert train_main(["asl_effnet", "--adapt", str(tmp_path / "photos"), "--out", str(tmp_path / "o")]) == 2
    assert "--adapt needs the model to start from: add --from" in capsys.readouterr().err
    spec = get_card("asl_effnet").spec(image_size=32)
    with pytest.raises(DataError, match=r"j_0.png: label 'j' is not one of the model's"):
        load_labelled_photos(tmp_path / "photos", spec)


def test_photo_augmentation_is_seeded_in_range_and_swaps_the_background():
    rows = np.full((4, 1, 32, 32), 90, np.uint8)
    rows[:, :, 8:24, 10:22] = 220  # a bright "hand" on a plain wall
    mask = hand_mask(torch.from_numpy(rows).float(), PhotoAugment().mask_threshold)
    assert mask[0, 0, 16, 16] == pytest.approx(1) and mask[0, 0, 1, 1] == pytest.approx(0, abs=1e-4)
    torch.manual_seed(0)
    a = photo_augmentation()(torch.from_numpy(rows))
    torch.manual_seed(0)
    b = photo_augmentation()(torch.from_numpy(rows))
    assert torch.equal(a, b) and a.shape == rows.shape and 0 <= a.min() and a.max() <= 255
    with pytest.raises(ValueError, match="grayscale batches"):
        photo_augmentation()(torch.zeros(2, 3, 8, 8))
