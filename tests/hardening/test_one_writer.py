"""The one artifact writer (issue 13): every artifact is identified by its content, a file of another kind is refused
unless --force, a file of the same kind is replaced (re-running a command works), and paths stay in their folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pytest

from formats.writer import (
    ArtifactPathError,
    ForeignFileError,
    Kind,
    Look,
    check_replace,
    clear_inputs,
    declare_inputs,
    identify,
    resolve_under,
    set_force,
    write_artifact,
)
from tests.conftest import REPO

EXPECTED = {
    "mnist_cnn.fp32.onnx": Look.ONNX,
    "mnist_cnn.prep.onnx": Look.ONNX,
    "mnist_cnn.fp16.onnx": Look.ONNX,
    "mnist_cnn.int8.onnx": Look.ONNX,
    "mnist_cnn.int8.ort.onnx": Look.ONNX,
    "mnist_cnn.json": Look.SPEC,
    "mnist_cnn.pt": Look.CHECKPOINT,
    "mnist_cnn.metrics.json": Look.REPORT,
    "mnist_cnn.calib.npz": Look.CALIB_SET,
    "mnist_cnn.calib.json": Look.CALIB_MANIFEST,
    "mnist_cnn.ranges.json": Look.RANGES,
    "mnist_cnn.calib.cache": Look.CALIB_CACHE,
    "mnist_cnn.calibration-run.json": Look.CALIB_RUN,
}


def test_every_artifact_the_pipeline_writes_is_identified_as_its_kind(calibrated_cnn):
    folder, _ = calibrated_cnn
    assert {name: identify(folder / name) for name in EXPECTED} == EXPECTED
    for name, look in EXPECTED.items():  # and each may be replaced by its own writer
        kind = next(k for k in Kind if look in k.replaces)
        check_replace(folder / name, kind)


def test_foreign_files_are_refused_unless_forced_and_never_a_folder_or_socket(tmp_path):
    report = tmp_path / "m.gate.json"
    report.write_bytes(b"\x89PNG\r\n\x1a\nnot a report")
    with pytest.raises(ForeignFileError, match=r"m.gate.json: already exists and looks like a PNG image, not a JSON "):
        write_artifact(report, "{}\n", Kind.REPORT)
    assert report.read_bytes().startswith(b"\x89PNG")
    write_artifact(tmp_path / "empty.json", "", Kind.REPORT)  # an empty file is no loss
    write_artifact(tmp_path / "empty.json", '{"a": 1}\n', Kind.REPORT)
    (tmp_path / "dir.json").mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock.json"))
    set_force(True)
    try:
        write_artifact(report, "{}\n", Kind.REPORT)  # --force replaces a file of another kind
        for name, what in (("sock.json", "not a regular file"), ("dir.json", "a folder")):
            with pytest.raises(ForeignFileError, match=f"{what}.*give another path"):
                write_artifact(tmp_path / name, "{}\n", Kind.REPORT)
    finally:
        set_force(False)
        sock.close()
    assert report.read_text() == "{}\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp file left


def test_a_fifo_is_written_into_and_an_input_of_the_run_is_refused_even_forced(tmp_path):  # issue 21
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    write_artifact(fifo, "{}\n", Kind.REPORT)  # no read-back from a FIFO (it would block)
    reader.join(timeout=10)
    assert received == [b"{}\n"] and identify(fifo) is Look.STREAM
    model = tmp_path / "m.gate.json"
    model.write_text("{}\n")
    declare_inputs(tmp_path / "absent", None, tmp_path / "." / "m.gate.json")
    set_force(True)
    try:
        with pytest.raises(ForeignFileError, match=r"m.gate.json: is an input of this run .*give another output"):
            write_artifact(model, '{"a": 1}\n', Kind.REPORT)
    finally:
        set_force(False)
        clear_inputs()
    assert model.read_text() == "{}\n"
    write_artifact(model, '{"a": 1}\n', Kind.REPORT)  # no longer an input


def test_paths_resolve_inside_the_output_folder(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    outside.mkdir()
    (out / "link").symlink_to(outside)
    with pytest.raises(ArtifactPathError, match="outside the output folder"):
        write_artifact(out / "link" / "m.gate.json", "{}\n", Kind.REPORT, out)
    with pytest.raises(ArtifactPathError, match="not a plain file name"):
        resolve_under(out / "bad\nname.json", out)
    assert list(outside.iterdir()) == []
    assert write_artifact(out / "m.gate.json", "{}\n", Kind.REPORT, out).read_text() == "{}\n"


def test_export_reruns_into_its_folder_and_force_replaces_a_foreign_file(trained_mnist, tmp_path, zygote):
    ckpt, onnx_path = trained_mnist["mnist_mlp"]
    checkpoint = onnx_path.parent / "mnist_mlp.pt"
    out = tmp_path / "exp"
    argv = ["export", "--checkpoint", str(checkpoint), "--out", str(out)]
    first = zygote.run(argv, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = zygote.run(argv, cwd=tmp_path)  # same kind in the same place: no --force needed
    assert again.returncode == 0, again.stderr
    (out / "mnist_mlp.json").write_text("a,b,c\n1,2,3\n")  # a CSV where the spec goes
    refused = zygote.run(argv, cwd=tmp_path)
    lines = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert refused.returncode == 2 and len(lines) == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "mnist_mlp.json: already exists and looks like a text file, not a model spec" in lines[0]
    assert "pass --force to replace it" in lines[0]
    assert (out / "mnist_mlp.json").read_text() == "a,b,c\n1,2,3\n"
    forced = zygote.run([*argv, "--force"], cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert identify(out / "mnist_mlp.json") is Look.SPEC


def test_triton_force_replaces_a_folder_that_is_not_a_model(trained_mnist, tmp_path):
    _, onnx_path = trained_mnist["mnist_mlp"]
    (tmp_path / "repo" / "mnist_mlp").mkdir(parents=True)
    (tmp_path / "repo" / "mnist_mlp" / "notes.txt").write_text("mine")
    argv = [sys.executable, "-m", "serving.repository", "--model", str(onnx_path), "--repo", str(tmp_path / "repo")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    refused = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert refused.returncode == 2 and "pass --force" in refused.stderr, refused.stderr
    assert (tmp_path / "repo" / "mnist_mlp" / "notes.txt").is_file()
    forced = subprocess.run([*argv, "--force"], capture_output=True, text=True, env=env, timeout=120)
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "repo" / "mnist_mlp" / "config.pbtxt").is_file()
    again = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)  # a Triton model: replaced
    assert again.returncode == 0, again.stderr


def test_a_report_never_holds_nan(tmp_path):  # issue 21, finding 18: json.dumps writes NaN, no parser reads it
    import json

    path = write_artifact(tmp_path / "m.metrics.json", json.dumps({"val_loss": float("nan"), "n": 1}), Kind.REPORT)
    assert json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the report")) == {
        "val_loss": None,
        "n": 1,
    }
    assert write_artifact(tmp_path / "ok.json", '{"a": 1.5}\n', Kind.REPORT).read_text() == '{"a": 1.5}\n'
