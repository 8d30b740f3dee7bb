import json
import shutil

import numpy as np
import pytest
import torch

from train.__main__ import main as train_main
from train.cards import get_card
from train.checkpoint import load_checkpoint
from train.data.image_folder import load_image_folder
from train.errors import DataError, TrainError
from train.loop import TrainConfig
from train.transfer import train_transfer


@pytest.fixture(scope="module")
def small_flowers(tmp_path_factory, data_dir):
    """Real flower photos, 3 classes × (6 train, 3 val), in the train/ val/ layout."""
    root = tmp_path_factory.mktemp("flowers")
    for split, count in (("train", 6), ("val", 3)):
        for cls in ("daisy", "roses", "tulips"):
            (root / split / cls).mkdir(parents=True)
            for f in sorted((data_dir / "flowers" / split / cls).iterdir())[:count]:
                shutil.copy(f, root / split / cls / f.name)
    return root


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


@pytest.mark.parametrize("backbone", ["vgg16", "efficientnet_lite0"])
def test_two_phases_freeze_then_finetune_at_reduced_resolution(small_flowers, tmp_path, backbone, monkeypatch):
    """--weights none at 32 px: phase 1 must leave the backbone untouched, phase 2 must move it."""
    snapshots = {}
    from train import transfer as transfer_module

    real_fit = transfer_module.fit

    def spying_fit(model, *args, **kwargs):
        before = _params(model.backbone)
        history = real_fit(model, *args, **kwargs)
        snapshots[model.frozen] = [not torch.equal(a, b) for a, b in zip(before, _params(model.backbone))]
        return history

    monkeypatch.setattr(transfer_module, "fit", spying_fit)
    report = train_transfer(
        backbone,
        "none",
        small_flowers,
        tmp_path,
        image_size=32,
        head=TrainConfig(epochs=1, batch_size=6),
        finetune=TrainConfig(epochs=1, lr=1e-4, batch_size=6),
        progress=False,
    )
    assert [p["phase"] for p in report["phases"]] == ["head", "finetune"]
    assert [p["frozen_backbone"] for p in report["phases"]] == [True, False]
    assert not any(snapshots[True]), "phase 1 changed the frozen backbone"
    assert any(snapshots[False]), "phase 2 did not fine-tune the backbone"
    assert report["train_images"] == 18 and report["val_images"] == 9
    ckpt = load_checkpoint(tmp_path / f"{backbone}_transfer.pt")
    assert ckpt.spec.labels == ("daisy", "roses", "tulips") and ckpt.spec.height == 32
    assert ckpt.spec.resize_size == round(32 * 256 / 224)


def test_backbone_keeps_its_batchnorm_statistics_in_both_phases():
    model = get_card("efficientnet_lite0_transfer").build(get_card("efficientnet_lite0_transfer").spec(("a", "b"), 32))
    for frozen in (True, False):
        model.freeze_backbone(frozen)
        model.train()
        assert not model.backbone.training and model.head.training
        before = [b.clone() for b in model.backbone.buffers()]
        model(torch.rand(4, 3, 32, 32))
        assert all(torch.equal(a, b) for a, b in zip(before, model.backbone.buffers()))


def test_folder_without_val_is_split(small_flowers, tmp_path):
    report = train_transfer(
        "efficientnet_lite0",
        "none",
        small_flowers / "train",
        tmp_path,
        image_size=32,
        head=TrainConfig(epochs=1, batch_size=6, val_fraction=1 / 3),
        finetune=TrainConfig(epochs=0),
        augment=False,
        progress=False,
    )
    assert report["train_images"] == 12 and report["val_images"] == 6
    assert [p["phase"] for p in report["phases"]] == ["head"]


def test_imagenet_weights_offline_are_a_clear_error_for_vgg16(small_flowers, tmp_path, monkeypatch):
    """No silent random backbone: with the download failing, the user is told what to do."""
    from torchvision.models import VGG16_Weights

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(type(VGG16_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    with pytest.raises(TrainError, match="VGG16 ImageNet weights could not be downloaded.*--weights PATH"):
        get_card("vgg16_transfer").build(get_card("vgg16_transfer").spec(("a", "b")), "imagenet")


def test_weights_from_a_path_are_checked(tmp_path):
    entry = get_card("efficientnet_lite0_transfer")
    spec = entry.spec(("a", "b"), 32)
    with pytest.raises(TrainError, match="weights file not found"):
        entry.build(spec, str(tmp_path / "none.pth"))
    torch.save({"foo": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(TrainError, match="weights do not fit the efficientnet_lite0 architecture"):
        entry.build(spec, str(tmp_path / "wrong.pth"))


def test_bad_image_folders(tmp_path, small_flowers):
    spec = get_card("efficientnet_lite0_transfer").spec(("a",), 32)
    with pytest.raises(DataError, match="not a folder"):
        load_image_folder(tmp_path / "nope", spec)
    (tmp_path / "one" / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match="only one class folder"):  # issue 21, finding 18
        load_image_folder(tmp_path / "one", spec)
    for name in ("cls", "other"):
        (tmp_path / "empty" / name).mkdir(parents=True)
    with pytest.raises(DataError, match="class folder holds no image files"):
        load_image_folder(tmp_path / "empty", spec)
    broken = tmp_path / "broken"
    shutil.copytree(small_flowers / "val", broken)
    (broken / "daisy" / "zz_broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(DataError, match="(?s)1 unreadable image.*zz_broken.jpg"):
        load_image_folder(broken, spec)


def test_cli_transfer_writes_both_phases(small_flowers, tmp_path, capsys):
    rc = train_main(
        [
            "transfer",
            "--backbone",
            "efficientnet_lite0",
            "--weights",
            "none",
            "--data",
            str(small_flowers),
            "--out",
            str(tmp_path),
            "--image-size",
            "32",
            "--epochs",
            "1",
            "--finetune-epochs",
            "1",
            "--batch-size",
            "6",
            "--no-progress",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().err  # narration is logged (stderr)
    assert "phase head (backbone frozen)" in out and "phase finetune (backbone trainable)" in out
    metrics = json.loads((tmp_path / "efficientnet_lite0_transfer.metrics.json").read_text())
    assert metrics["weights"] == "none" and len(metrics["phases"]) == 2


@pytest.mark.slow
def test_offline_pretrained_backbone_reaches_90_percent_on_flowers(data_dir, tmp_path):
    """The real EfficientNet-Lite0 ImageNet weights, full resolution, the flowers subset."""
    head, finetune = get_card("efficientnet_lite0_transfer").demo.budget

    report = train_transfer(
        "efficientnet_lite0",
        "imagenet",
        data_dir / "flowers",
        tmp_path,
        head=head,
        finetune=finetune,
        progress=False,
    )
    assert report["val"]["accuracy"] >= 0.90
    assert np.isfinite(report["val"]["loss"])
