"""The four mistakes a newcomer makes first, each answered with its obvious cause through the real ``edge`` CLI:
a checkpoint given as ``--engine``, an INT8 build before calibration, a gate with nothing to gate, and what the
doctor's checks mean for this machine (its last line)."""

from __future__ import annotations

import shutil

from formats.cli import EXIT_OK, EXIT_USER_ERROR
from tests.edge.test_edge import DEVICE_PYTHON, edge, needs_device_venv
from tests.hardening.tiny_models import write_model


def test_a_checkpoint_given_as_engine_is_called_a_checkpoint(tmp_path):
    import torch
    from PIL import Image

    checkpoint = tmp_path / "asl_cnn.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, checkpoint)
    image = tmp_path / "x.png"
    Image.new("L", (28, 28)).save(image)
    done = edge("infer", "--engine", str(checkpoint), str(image))
    assert done.returncode == EXIT_USER_ERROR, done.stderr
    assert "this is a checkpoint" in done.stderr and f"`edge export --checkpoint {checkpoint}`" in done.stderr
    assert "re-export" not in done.stderr and "Traceback" not in done.stderr


def test_an_int8_build_before_calibration_says_run_calibrate_first(tmp_path):
    write_model(tmp_path, name="mnist_cnn")  # the fp32 export alone, as after `edge export`
    done = edge("build", "--onnx", str(tmp_path / "mnist_cnn.int8.onnx"))
    assert done.returncode == EXIT_USER_ERROR, done.stderr
    assert f"run `edge calibrate --model mnist_cnn --artifacts {tmp_path}` first" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    done = edge("build", "--onnx", str(tmp_path / "other.fp32.onnx"))  # a plain typo keeps the plain message
    assert done.returncode == EXIT_USER_ERROR and "ONNX file not found" in done.stderr, done.stderr


def test_gate_on_an_uncalibrated_folder_says_nothing_to_gate(trained_mnist, data_dir, tmp_path):
    _, onnx_path = trained_mnist["mnist_cnn"]
    for suffix in (".pt", ".json", ".fp32.onnx"):  # what `edge train` + `edge export` leave
        shutil.copy(onnx_path.parent / f"mnist_cnn{suffix}", tmp_path)
    done = edge("gate", "--model", "mnist_cnn", "--artifacts", str(tmp_path), "--data-dir", str(data_dir))
    assert done.returncode == EXIT_USER_ERROR, (done.stdout, done.stderr)
    assert "nothing to gate" in done.stderr and "run `edge calibrate --model mnist_cnn" in done.stderr
    assert "PASS" not in done.stdout + done.stderr
    assert not (tmp_path / "mnist_cnn.gate.json").exists()


@needs_device_venv
def test_doctor_ends_with_a_one_line_verdict():
    """The device profile here: TensorRT-RTX builds plans, no GPU runs them."""
    done = edge("doctor", python=DEVICE_PYTHON)
    assert done.returncode == EXIT_OK, done.stderr
    lines = done.stdout.strip().splitlines()
    if not any(line.split()[:2] == ["OK", "gpu"] for line in lines):  # a GPU box may run plans: another verdict
        assert lines[-1].startswith("verdict: this machine can build plans but not run them; use the .onnx"), lines
    assert lines[-1].startswith("verdict: ") and len(lines[-1]) < 160, lines[-1]
    done = edge("doctor", "--json", python=DEVICE_PYTHON)
    assert done.stdout.lstrip().startswith("[") and "verdict: " in done.stderr
