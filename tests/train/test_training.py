import json

import numpy as np
import pytest
import torch

from train.__main__ import main as train_main
from train.cards import DatasetKind, all_cards, get_card
from train.checkpoint import load_checkpoint, save_checkpoint
from train.errors import TrainError
from train.loop import TrainConfig, evaluate, fit, split_train_val
from train.workflow import kfold_indices, to_tensors


@pytest.fixture(scope="module")
def small(data_dir):
    from train.data.mnist import load_mnist

    split = load_mnist(data_dir, "train")
    spec = get_card("mnist_mlp").spec()
    return to_tensors(split.images[:3000], split.labels[:3000], spec)


def test_validation_split_is_disjoint_seeded_and_complete():
    tr, va = split_train_val(1000, 0.1, seed=3)
    assert len(va) == 100 and len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 1000
    assert np.array_equal(va, split_train_val(1000, 0.1, seed=3)[1])
    assert not np.array_equal(va, split_train_val(1000, 0.1, seed=4)[1])


def test_kfold_folds_partition_the_data():
    folds = kfold_indices(103, 4, seed=0)
    assert len(folds) == 4
    assert sorted(np.concatenate([va for _, va in folds]).tolist()) == list(range(103))
    for tr, va in folds:
        assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 103


@pytest.mark.parametrize("name", sorted(c.name for c in all_cards()))
def test_models_produce_logits_for_their_spec(name):
    entry = get_card(name)
    labels = ("cat", "dog", "fish") if entry.dataset is DatasetKind.IMAGE_FOLDER else None
    spec = entry.spec(labels, 64)
    out = entry.build(spec).eval()(torch.zeros((2,) + spec.input_shape))
    assert out.shape == (2, spec.num_classes)


def test_transfer_models_need_labels_and_names_are_unique():
    with pytest.raises(TrainError, match="vgg16_transfer needs the class labels"):
        get_card("vgg16_transfer").spec()
    with pytest.raises(TrainError, match="unknown model 'resnet'; choose one of"):
        get_card("resnet")


def test_training_learns_and_is_deterministic_under_a_seed(small):
    x, y = small
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = get_card("mnist_mlp").build()
        history = fit(model, (x[:2500], y[:2500]), (x[2500:], y[2500:]), TrainConfig(epochs=2, seed=7), progress=False)
        runs.append((model, history))
    (m1, h1), (m2, h2) = runs
    assert h1[-1].val_accuracy > 0.85  # 2,500 real digits, 2 epochs
    assert h1[-1].train_loss < h1[0].train_loss
    assert [h.val_loss for h in h1] == [h.val_loss for h in h2]
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p1, p2)


def test_checkpoint_round_trip_loads_weights_only(tmp_path, small):
    model = get_card("mnist_mlp").build()
    spec = get_card("mnist_mlp").spec()
    save_checkpoint(tmp_path / "m.pt", "mnist_mlp", model, spec, {"note": 1})
    ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt.spec == spec and ckpt.metrics == {"note": 1}
    x, y = small
    assert evaluate(ckpt.model, x[:100], y[:100]) == evaluate(model.eval(), x[:100], y[:100])


def test_bad_checkpoints_are_refused(tmp_path):
    with pytest.raises(TrainError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(TrainError, match="junk.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"a": 1}, tmp_path / "foreign.pt")
    with pytest.raises(TrainError, match="not a checkpoint of this toolkit"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_cli_trains_and_writes_checkpoint_spec_and_metrics(tmp_path, data_dir, capsys):
    rc = train_main(
        [
            "mnist",
            "--model",
            "mnist_mlp",
            "--data-dir",
            str(data_dir),
            "--out",
            str(tmp_path),
            "--epochs",
            "1",
            "--limit",
            "2000",
            "--no-progress",
        ]
    )
    assert rc == 0
    metrics = json.loads((tmp_path / "mnist_mlp.metrics.json").read_text())
    assert metrics["train_images"] == 2000 and metrics["test"]["images"] == 10000
    assert 0.7 < metrics["test"]["accuracy"] <= 1.0
    assert len(metrics["history"]) == 1 and metrics["history"][0]["val_accuracy"] > 0.7
    assert (tmp_path / "mnist_mlp.json").is_file() and (tmp_path / "mnist_mlp.pt").is_file()
    assert "test accuracy" in capsys.readouterr().err  # narration is logged (stderr)


def test_cli_kfold_reports_each_setting_and_trains_the_best(tmp_path, data_dir, capsys):
    rc = train_main(
        [
            "mnist",
            "--model",
            "mnist_mlp",
            "--data-dir",
            str(data_dir),
            "--out",
            str(tmp_path),
            "--epochs",
            "1",
            "--limit",
            "1200",
            "--kfold",
            "3",
            "--grid-lr",
            "1e-3,1e-5",
            "--no-progress",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().err  # narration is logged (stderr)
    assert "kfold lr=0.001 batch=128: val acc" in out and "± " in out
    kfold = json.loads((tmp_path / "mnist_mlp.metrics.json").read_text())["kfold"]
    assert kfold["k"] == 3 and len(kfold["results"]) == 2
    assert all(len(r["fold_accuracies"]) == 3 for r in kfold["results"])
    assert kfold["chosen"]["lr"] == 1e-3  # 1e-5 barely moves in one epoch of 800 images
    metrics = json.loads((tmp_path / "mnist_mlp.metrics.json").read_text())
    assert metrics["config"]["lr"] == 1e-3 and metrics["train_images"] == 1200


def test_cli_missing_data_is_a_clear_error(tmp_path, capsys):
    rc = train_main(["mnist", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o"), "--epochs", "1"])
    assert rc == 2
    assert "MNIST file not found; run `make data`" in capsys.readouterr().err
