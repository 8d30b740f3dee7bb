"""One calibration run per artifact set (issue 13, findings 9, 10, 27), on the real pipeline's files."""

from __future__ import annotations

import fcntl
import os
import shutil
import stat

import onnx
import pytest

from calibration.run_check import SHA_KEY, calibration_lock, check_one_run
from train.errors import DataError


def test_second_calibration_of_a_model_is_refused_while_one_runs(tmp_path, zygote):  # finding 9
    with calibration_lock(tmp_path, "mnist_cnn") as lock:
        fd = os.open(lock, os.O_RDONLY)  # another process's view: the lock is held
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)
        result = zygote.run(
            ["calibration", "--model", "mnist_cnn", "--artifacts", str(tmp_path), "--json"], cwd=tmp_path
        )
        assert result.returncode == 2 and "another calibration is running in this folder" in result.stderr
        assert "Traceback" not in result.stderr
    with calibration_lock(tmp_path, "mnist_cnn"):  # released when its holder ends
        pass
    assert list(tmp_path.iterdir()) == []  # no lock file left behind


def test_variants_from_another_run_are_refused_by_the_gate(calibrated_cnn, tmp_path, zygote):  # finding 9
    folder, result = calibrated_cnn
    copy = tmp_path / "art"
    shutil.copytree(folder, copy)
    check_one_run(copy, "mnist_cnn")  # the pipeline's own set is one run
    stale = copy / "mnist_cnn.int8.onnx"
    proto = onnx.load(str(stale))
    props = {p.key: p.value for p in proto.metadata_props}
    onnx.helper.set_model_props(proto, {**props, SHA_KEY: "f" * 64})
    onnx.save(proto, str(stale))
    with pytest.raises(DataError, match=r"mnist_cnn.int8.onnx: calibrated on set ffffffffffff"):
        check_one_run(copy, "mnist_cnn")
    result = zygote.run(["calibration.gate", "--model", "mnist_cnn", "--artifacts", str(copy), "--json"], cwd=tmp_path)
    assert result.returncode == 2 and "mixes two calibration runs" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_prepared_model_and_ranges_are_written_atomically_with_usual_modes(calibrated_cnn):  # findings 10, 27
    folder, result = calibrated_cnn
    mask = os.umask(0)
    os.umask(mask)
    for name in ("mnist_cnn.ranges.json", "mnist_cnn.prep.onnx", "mnist_cnn.int8.onnx"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o666 & ~mask, name
    assert not list(folder.glob(".*.tmp"))


def test_gate_refuses_deployed_labels_that_differ_from_the_checkpoint(
    calibrated_cnn, data_dir, tmp_path, zygote
):  # finding 7
    import json

    folder, _ = calibrated_cnn
    copy = tmp_path / "art"
    shutil.copytree(folder, copy)
    spec = json.loads((copy / "mnist_cnn.json").read_text())
    (copy / "mnist_cnn.json").write_text(json.dumps({**spec, "labels": spec["labels"][::-1]}))
    result = zygote.run(
        ["calibration.gate", "--model", "mnist_cnn", "--artifacts", str(copy), "--data-dir", str(data_dir)],
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "labels differ from the checkpoint" in result.stderr, result.stderr
