import numpy as np
import pytest

from calibration.calibration_set import (
    CalibrationSetError,
    build_calibration_set,
    load_calibration_set,
    save_calibration_set,
    select_stratified,
)
from formats.artifacts import Artifacts
from train.cards import DatasetKind, LabelledSplit, get_card, load_split


def _split(labels, split="train"):
    labels = np.asarray(labels, np.int64)
    images = (np.arange(len(labels))[:, None, None] % 256).astype(np.uint8) * np.ones((1, 4, 4), np.uint8)
    return LabelledSplit(DatasetKind.MNIST, split, images, labels, tuple(f"row{i}" for i in range(len(labels))))


def test_selection_is_deterministic_and_seed_dependent():
    labels = np.repeat(np.arange(10), 100)
    a, b = select_stratified(labels, 50, seed=0), select_stratified(labels, 50, seed=0)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, select_stratified(labels, 50, seed=1))
    assert len(np.unique(a)) == 50


def test_every_class_covered_evenly_even_when_classes_are_unbalanced():
    labels = np.concatenate([np.full(500, 0), np.full(30, 1), np.full(3, 2)])
    picked = labels[select_stratified(labels, 40)]
    counts = np.bincount(picked)
    assert counts[2] == 3  # the small class gives all it has
    assert set(np.unique(picked)) == {0, 1, 2}
    assert abs(int(counts[0]) - int(counts[1])) <= 1


def test_size_beyond_the_split_is_refused_with_the_fix():
    with pytest.raises(CalibrationSetError, match="--calib-size"):
        select_stratified(np.arange(5), 6)


def test_test_split_is_refused():
    with pytest.raises(CalibrationSetError, match="training split"):
        build_calibration_set("toy", _split(np.arange(10) % 2, split="test"), 4)


def test_real_mnist_set_comes_from_the_training_file_only(data_dir):
    spec = get_card("mnist_cnn").spec()
    calib = build_calibration_set("mnist_cnn", load_split(spec, data_dir, "train"), 200)
    assert all(i.startswith("train-images-idx3-ubyte#") for i in calib.ids)
    assert calib.class_counts() == {c: 20 for c in range(10)}
    test_ids = set(load_split(spec, data_dir, "test").ids)
    assert test_ids.isdisjoint(calib.ids)


def test_manifest_round_trip_and_tamper_detection(tmp_path):
    calib = build_calibration_set("toy", _split(np.arange(60) % 3), 12, seed=3)
    npz, manifest = save_calibration_set(calib, Artifacts(tmp_path, "toy"))
    loaded = load_calibration_set(Artifacts(tmp_path, "toy"))
    assert loaded.ids == calib.ids and np.array_equal(loaded.images, calib.images)
    assert loaded.manifest()["sha256"] == calib.sha256
    tampered = calib.images.copy()
    tampered[0, 0, 0] ^= 1
    np.savez_compressed(npz, images=tampered, labels=calib.labels)
    with pytest.raises(CalibrationSetError, match="does not match its manifest"):
        load_calibration_set(Artifacts(tmp_path, "toy"))


def test_missing_set_names_the_command(tmp_path):
    with pytest.raises(CalibrationSetError, match="python -m calibration --model nothing"):
        load_calibration_set(Artifacts(tmp_path, "nothing"))
    assert Artifacts(tmp_path, "m").calibration_set.name == "m.calib.npz"
