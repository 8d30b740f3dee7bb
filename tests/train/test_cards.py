"""Model cards: one registry, duplicates refused, and a model added as one card reaches every step that reads it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from train.cards import (
    TEST,
    DatasetKind,
    DemoPlan,
    ModelCard,
    all_cards,
    demo_cards,
    get_card,
    load_split,
    register,
    registered,
)
from train.data.splits import mnist_split
from train.errors import DataError, TrainError
from train.loop import TrainConfig
from train.models.mnist import mnist_spec
from train.models.transfer import IMAGENET_MEAN, IMAGENET_STD, BackboneInfo, TransferModel

TOY = "toy_digits"


def _toy_spec(labels, size):
    return replace(mnist_spec(TOY), name=TOY)


def _toy_train(card: ModelCard, data_dir: Path, out: Path, progress: bool) -> dict:
    from train.workflow import train_and_save

    train = mnist_split(None, data_dir, "train")
    return train_and_save(
        card.name,
        train.images[:2000],
        train.labels[:2000],
        lambda: (lambda t: (t.images, t.labels))(mnist_split(None, data_dir, TEST)),
        out,
        card.demo.budget[0],
        progress=progress,
    )


def _toy_card() -> ModelCard:
    """A linear digit classifier: defined here, registered here, nowhere else."""
    return ModelCard(
        TOY,
        lambda spec, weights: nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)),
        _toy_spec,
        DatasetKind.MNIST,
        splits=mnist_split,
        data="mnist",
        int8_max_drop_pp=7.5,
        demo=DemoPlan(
            0.5,
            "MNIST test (10k)",
            (TrainConfig(epochs=1, batch_size=64),),
            _toy_train,
            lambda data_dir, out: get_card("mnist_cnn").demo.samples(data_dir, out),
            robustness_samples=4,
        ),
    )


def test_a_second_card_of_a_name_is_refused_loudly():
    with pytest.raises(ValueError, match="model card 'mnist_cnn' registered twice"):
        register(replace(get_card("mnist_cnn")))
    assert get_card("mnist_cnn").int8_max_drop_pp == 0.5  # the first card stays


def test_the_course_cards_and_their_facts():
    names = [c.name for c in all_cards()]
    assert len(names) == len(set(names)) and {"mnist_mlp", "asl_cnn", "efficientnet_lite0_imagenet"} <= set(names)
    assert [c.name for c in demo_cards()] == ["mnist_mlp", "mnist_cnn", "asl_cnn", "efficientnet_lite0_transfer"]
    assert {c.name: c.int8_max_drop_pp for c in all_cards() if c.splits} == {
        "mnist_mlp": 0.5,
        "mnist_cnn": 0.5,
        "asl_cnn": 0.5,
        "asl_effnet": 1.0,  # train/cards/real_hands.py: calibrated and judged on Sign-MNIST like asl_cnn
        "asl_effnet_adapted": 1.0,
        "vgg16_transfer": 1.0,
        "efficientnet_lite0_transfer": 1.0,
    }
    with pytest.raises(DataError, match="'vgg16_imagenet' .data set 'imagenet'. has no labelled data"):
        get_card("vgg16_imagenet").load_split(None, Path("."), TEST)


def test_an_unknown_backbone_is_refused_not_built_as_another():
    with pytest.raises(TrainError, match="unknown backbone 'resnet18'; choose one of efficientnet_lite0, vgg16"):
        TransferModel("resnet18", 3)


def test_a_card_brings_its_own_backbone():
    """A new backbone is one BackboneInfo on one card: no table in train/models/transfer.py to edit."""
    from train.__main__ import build_parser
    from train.models.transfer import transfer_spec

    tiny = BackboneInfo(
        "tiny_conv",
        4,
        IMAGENET_MEAN,
        IMAGENET_STD,
        load=lambda weights: nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 9)),
        extractor=lambda classifier: classifier[:3],
        head=lambda features, classes: nn.Linear(features, classes),
    )
    card = ModelCard(
        "tiny_conv_transfer",
        lambda spec, weights: TransferModel(tiny, spec.num_classes, weights),
        lambda labels, size: transfer_spec("tiny_conv_transfer", tiny, tuple(labels), size or 32),
        DatasetKind.IMAGE_FOLDER,
        backbone=tiny,
    )
    with registered(card):
        spec = get_card("tiny_conv_transfer").spec(("a", "b"), 16)
        assert get_card("tiny_conv_transfer").build(spec).eval()(torch.zeros(2, 3, 16, 16)).shape == (2, 2)
        assert build_parser().parse_args(["transfer", "--backbone", "tiny_conv", "--data", "d", "--out", "o"])
    with pytest.raises(TrainError, match="unknown model 'tiny_conv_transfer'"):
        get_card("tiny_conv_transfer")


def test_a_throwaway_card_flows_through_training_checkpoint_splits_and_the_gate(data_dir, tmp_path):
    """Registered here and removed after: the demo hook trains it, the checkpoint rebuilds it from the card, the
    calibration reads its training split, the gate its held-out split and its INT8 budget."""
    from calibration.calibrate import CalibrationOptions, calibrate_model
    from calibration.gate import judge, reference_result
    from export.onnx_export import export_fp32
    from formats.artifacts import Artifacts, Precision
    from train.checkpoint import load_checkpoint

    names = Artifacts(tmp_path, TOY)
    with registered(_toy_card()) as card:
        assert TOY in [c.name for c in demo_cards()] and card.missing_data(data_dir) is None
        report = card.demo.train(card, data_dir, tmp_path, False)
        assert report["test"]["accuracy"] > card.demo.target_accuracy and np.isfinite(report["test"]["loss"])
        ckpt = load_checkpoint(names.checkpoint)
        assert ckpt.model_name == TOY and ckpt.spec.name == TOY
        export_fp32(ckpt.model, ckpt.spec, tmp_path)
        result = calibrate_model(TOY, tmp_path, data_dir, CalibrationOptions(size=64), log=lambda _: None)
        manifest = json.loads(result.files.calibration_manifest.read_text())
        assert (manifest["dataset"], manifest["split"]) == ("mnist", "train")
        held_out = load_split(ckpt.spec, data_dir, TEST)
        assert held_out.dataset == "mnist" and len(held_out.labels) == 10_000
        few = replace(held_out, images=held_out.images[:300], labels=held_out.labels[:300], ids=held_out.ids[:300])
        spec, reference = reference_result(names.checkpoint, few)
        row, _ = judge(TOY, Precision.INT8, names.onnx(Precision.INT8), few, spec, reference)
        assert row.budget.max_drop_pp == 7.5  # the card's budget, not a table's
    with pytest.raises(TrainError, match=f"unknown model '{TOY}'"):
        get_card(TOY)


@pytest.mark.slow
def test_a_throwaway_card_runs_the_whole_pipeline(data_dir, tmp_path):
    """The demo's whole flow (train → … → engines → compare) on a card defined in this test alone."""
    from pipeline.flow import run_model

    with registered(_toy_card()) as card:
        report = run_model(card, data_dir, tmp_path, progress=False, say=lambda _: None)
    assert report.model == TOY and report.accuracy_ok and report.parity.passed
    assert {r.precision for r in report.gate.rows} >= {"fp32", "fp16", "int8"}
