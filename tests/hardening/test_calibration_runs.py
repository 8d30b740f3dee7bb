"""One calibration run per artifact set (issue 13, findings 9, 10, 27), on the real pipeline's files."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import subprocess
import sys

import onnx
import pytest

from calibration.run_check import SHA_KEY, calibration_lock, check_one_run
from formats.artifacts import Artifacts
from tests.conftest import REPO
from train.errors import DataError


def test_second_calibration_of_a_model_is_refused_while_one_runs(tmp_path, zygote):  # finding 9
    with calibration_lock(Artifacts(tmp_path, "mnist_cnn")) as lock:
        fd = os.open(lock, os.O_RDONLY)  # another process's view: the lock is held
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)
        result = zygote.run(
            ["calibration", "--model", "mnist_cnn", "--artifacts", str(tmp_path), "--json"], cwd=tmp_path
        )
        assert result.returncode == 2 and "another calibration is running in this folder" in result.stderr
        assert "Traceback" not in result.stderr
    with calibration_lock(Artifacts(tmp_path, "mnist_cnn")):  # released when its holder ends
        pass
    assert list(tmp_path.iterdir()) == []  # no lock file left behind


def test_variants_from_another_run_are_refused_by_the_gate(calibrated_cnn, tmp_path, zygote):  # finding 9
    folder, result = calibrated_cnn
    copy = tmp_path / "art"
    shutil.copytree(folder, copy)
    check_one_run(Artifacts(copy, "mnist_cnn"))  # the pipeline's own set is one run
    stale = copy / "mnist_cnn.int8.onnx"
    proto = onnx.load(str(stale))
    props = {p.key: p.value for p in proto.metadata_props}
    onnx.helper.set_model_props(proto, {**props, SHA_KEY: "f" * 64})
    onnx.save(proto, str(stale))
    with pytest.raises(DataError, match=r"mnist_cnn.int8.onnx: calibrated on set ffffffffffff"):
        check_one_run(Artifacts(copy, "mnist_cnn"))
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


# --- finding 9 in full: one run id across every derived file (the run file) ------------------------------------


@pytest.fixture(scope="module")
def other_run(calibrated_cnn, data_dir, tmp_path_factory):
    """The same model calibrated again with another seed and method: the files a second run leaves."""
    from calibration.calibrate import CalibrationOptions, calibrate_model
    from calibration.ranges import Method

    folder, _ = calibrated_cnn
    other = tmp_path_factory.mktemp("other_run") / "art"
    shutil.copytree(folder, other)
    options = CalibrationOptions(method=Method.MINMAX, size=128, seed=1)
    return other, calibrate_model("mnist_cnn", other, data_dir, options, log=lambda *_: None)


def test_the_run_file_records_the_run_and_every_derived_file(calibrated_cnn):
    import hashlib
    import json

    folder, result = calibrated_cnn
    doc = json.loads((folder / "mnist_cnn.calibration-run.json").read_text())
    assert doc["run"] == {"calibration_sha256": result.calibration_sha256, "method": "entropy", "seed": 0, "size": 128}
    derived = {"calib.npz", "calib.json", "prep.onnx", "ranges.json", "calib.cache", "fp16.onnx", "int8.onnx"}
    assert set(doc["files"]) == {f"mnist_cnn.{s}" for s in derived | {"int8.ort.onnx"}}
    for name, sha in doc["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == sha, name


def _mixed(calibrated_cnn, other_run, tmp_path, *names: str):
    folder, _ = calibrated_cnn
    mixed = tmp_path / "art"
    shutil.copytree(folder, mixed)
    for name in names:
        shutil.copy(other_run[0] / name, mixed / name)
    return mixed


def test_two_runs_with_another_seed_and_method_leave_a_set_that_is_refused(
    calibrated_cnn, other_run, data_dir, tmp_path, zygote
):  # finding 9, reproduction 1: the second run's cache and ranges beside the first run's set and variants
    from calibration.ranges import load_ranges

    mixed = _mixed(calibrated_cnn, other_run, tmp_path, "mnist_cnn.calib.cache", "mnist_cnn.ranges.json")
    gate = zygote.run(
        ["calibration.gate", "--model", "mnist_cnn", "--artifacts", str(mixed), "--data-dir", str(data_dir)],
        cwd=tmp_path,
    )
    lines = [line for line in gate.stderr.splitlines() if line.startswith("error:")]
    assert gate.returncode == 2 and len(lines) == 1 and "Traceback" not in gate.stderr, gate.stderr
    assert "mnist_cnn.calib.cache: not the file calibration run" in lines[0] and "seed 0" in lines[0]
    assert "mixes two calibration runs" in lines[0]
    engine = subprocess.run(  # the implicit-INT8 build from the prepared graph and the (stale) cache
        [
            sys.executable,
            "-m",
            "engine",
            "--onnx",
            str(mixed / "mnist_cnn.prep.onnx"),
            "--calib-cache",
            str(mixed / "mnist_cnn.calib.cache"),
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert engine.returncode == 2 and "Traceback" not in engine.stderr, engine.stderr
    assert "mnist_cnn.calib.cache: not the file calibration run" in engine.stderr, engine.stderr
    assert json.loads(engine.stdout)["ok"] is False
    from formats.calibration_run import CalibrationRunError  # (imported here: the behaviour above is the test)

    with pytest.raises(CalibrationRunError, match=r"mnist_cnn.ranges.json: not the file calibration run"):
        load_ranges(mixed / "mnist_cnn.ranges.json")


def test_a_run_killed_after_it_wrote_a_derived_file_leaves_a_set_that_is_refused(
    calibrated_cnn, other_run, data_dir, tmp_path, zygote
):  # finding 9, reproduction 2: a run killed after the calibration set and ranges (same set, new ranges)
    from calibration.calibration_set import load_calibration_set

    mixed = _mixed(calibrated_cnn, other_run, tmp_path, "mnist_cnn.ranges.json")
    gate = zygote.run(
        ["calibration.gate", "--model", "mnist_cnn", "--artifacts", str(mixed), "--data-dir", str(data_dir), "--json"],
        cwd=tmp_path,
    )
    assert gate.returncode == 2 and "Traceback" not in gate.stderr, gate.stderr
    assert "mnist_cnn.ranges.json: not the file calibration run" in json.loads(gate.stdout)["error"]
    from formats.calibration_run import CalibrationRunError

    stale_set = _mixed(calibrated_cnn, other_run, tmp_path / "b", "mnist_cnn.calib.npz", "mnist_cnn.calib.json")
    with pytest.raises(CalibrationRunError, match=r"mnist_cnn.calib.npz: not the file calibration run"):
        load_calibration_set(Artifacts(stale_set, "mnist_cnn"))
