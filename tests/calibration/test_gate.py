"""The accuracy gate on real test digits: passing variants pass, a broken INT8 fails by name."""

import json

import numpy as np

from calibration import gate
from calibration.ranges import load_ranges
from calibration.variants import Precision, write_int8
from runtime.spec import ModelSpec


def test_gate_writes_json_markdown_and_plot(calibrated_cnn, data_dir):
    folder, _ = calibrated_cnn
    result = gate.run_gate("mnist_cnn", folder, data_dir)
    assert [r.precision for r in result.rows] == ["fp32", "fp16", "int8", "int8.ort"]
    assert result.passed, gate.markdown(result.rows)
    report = json.loads((folder / "mnist_cnn.gate.json").read_text())
    assert report["images"] == 10000 and report["passed"]
    assert len(report["rows"][0]["per_class"]) == 10
    assert (folder / "mnist_cnn.confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| mnist_cnn | int8 |" in (folder / "mnist_cnn.gate.md").read_text()


def test_gate_fails_naming_model_and_precision(calibrated_cnn, data_dir, tmp_path, capsys):
    folder, _ = calibrated_cnn
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("mnist_cnn.pt", "mnist_cnn.json", "mnist_cnn.fp32.onnx"):
        (broken / name).write_bytes((folder / name).read_bytes())
    ranges = load_ranges(folder / "mnist_cnn.ranges.json")
    for data in ranges.values():  # ranges 50× too narrow: every activation clips
        low, high = data.range_value
        data.lowest, data.highest = np.asarray(low) / 50, np.asarray(high) / 50
    write_int8(
        folder / "mnist_cnn.prep.onnx",
        ranges,
        ModelSpec.load(folder / "mnist_cnn.json"),
        Precision.INT8.path(broken, "mnist_cnn"),
    )
    code = gate.main(["--model", "mnist_cnn", "--artifacts", str(broken), "--data-dir", str(data_dir)])
    err = capsys.readouterr().err
    assert code == 1
    assert "FAIL mnist_cnn int8: accuracy drop" in err and "budget accuracy drop ≤ 0.5 pp" in err


def test_missing_checkpoint_is_a_clear_usage_error(tmp_path, data_dir, capsys):
    assert gate.main(["--model", "mnist_cnn", "--artifacts", str(tmp_path), "--data-dir", str(data_dir)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_calibration_cli_json_is_clean_and_complete(calibrated_cnn, data_dir, tmp_path, capsys):
    from calibration.__main__ import main

    folder, _ = calibrated_cnn
    for name in ("mnist_cnn.pt", "mnist_cnn.json", "mnist_cnn.fp32.onnx"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    code = main(
        [
            "--model",
            "mnist_cnn",
            "--artifacts",
            str(tmp_path),
            "--data-dir",
            str(data_dir),
            "--calib-size",
            "64",
            "--method",
            "minmax",
            "--json",
        ]
    )
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["passed"] and doc["calibration"]["calibration_size"] == 64
    assert doc["calibration"]["method"] == "minmax" and len(doc["gate"]) == 4
    for suffix in ("fp16.onnx", "int8.onnx", "int8.ort.onnx", "calib.cache", "calib.json", "gate.md"):
        assert (tmp_path / f"mnist_cnn.{suffix}").is_file()
