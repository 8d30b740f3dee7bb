"""Parity for the ASL CNN and the transfer models: PyTorch vs the runtime on real held-out data."""

import pytest

from export.onnx_export import export_fp32
from harness.parity import check_parity
from train.cards import get_card
from train.data.image_folder import load_image_folder
from train.data.sign_mnist import load_sign_mnist


@pytest.fixture(scope="module")
def asl_test(data_dir):
    return load_sign_mnist(data_dir, "test")


def test_asl_cnn_parity_on_the_kaggle_test_split(tmp_path, data_dir, asl_test):
    from train.asl import train_asl
    from train.checkpoint import load_checkpoint
    from train.loop import TrainConfig

    train_asl(data_dir, tmp_path, TrainConfig(epochs=1), limit=4000, progress=False)
    ckpt = load_checkpoint(tmp_path / "asl_cnn.pt")
    engine = export_fp32(ckpt.model, ckpt.spec, tmp_path)
    report = check_parity(ckpt.model, ckpt.spec, engine, asl_test.images, asl_test.labels)
    assert report.images == 7172 and report.passed, report.summary()


@pytest.mark.parametrize(
    "name, weights, size",
    [
        ("efficientnet_lite0_imagenet", "imagenet", 224),
        ("vgg16_transfer", "none", 64),
        ("efficientnet_lite0_transfer", "imagenet", 224),
    ],
)
def test_transfer_model_parity_on_flowers_val(tmp_path, data_dir, name, weights, size):
    entry = get_card(name)
    labels = None if entry.dataset == "imagenet" else ("daisy", "dandelion", "roses", "sunflowers", "tulips")
    spec = entry.spec(labels, size)
    model = entry.build(spec, weights).eval()
    val = load_image_folder(data_dir / "flowers" / "val", spec)
    engine = export_fp32(model, spec, tmp_path)
    report = check_parity(model, spec, engine, val.images[::4], None)
    assert report.images == 50 and report.passed, report.summary()
