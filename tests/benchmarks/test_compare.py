"""The precision comparison and the batch-1 latency line, both through the comparison harness."""

import json
import os
import subprocess
import sys

from benchmarks.latency_line import compare_batch1
from tests.conftest import REPO


def test_compare_cli_times_pytorch_and_every_precision_file(calibrated_cnn, tmp_path):
    folder, _ = calibrated_cnn
    for f in folder.iterdir():  # a copy: the run writes its reports beside the model
        if f.is_file() and f.name.startswith("mnist_cnn."):
            (tmp_path / f.name).write_bytes(f.read_bytes())
    argv = ["compare", "--model", "mnist_cnn", "--artifacts", str(tmp_path), "--batch", "1,8"]
    argv += ["--duration-s", "0.05", "--rounds", "2", "--json"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", *argv], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=240
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    rows = {(r["candidate"], r["batch"]): r for r in report["rows"]}
    candidates = {"pytorch-eager-fp32", "ort-fp32", "ort-fp16", "ort-int8", "ort-int8.ort"}
    assert {(c, b) for c in candidates for b in (1, 8)} <= set(rows)
    assert all(len(rows[(c, 8)]["rounds"]) == 2 and rows[(c, 8)]["median_ms"] > 0 for c in candidates)
    assert rows[("ort-fp32", 1)]["vs_ort_fp32"] == 1.0 and rows[("pytorch-eager-fp32", 1)]["vs_torch"] == 1.0
    # an overhead is reported, or the bare call timed slower than the call containing it and that is flagged
    measurement_error = any("measurement error" in w for w in report["warnings"])
    assert (report["overhead_bs1"] is not None) != measurement_error and (tmp_path / "mnist_cnn.compare.md").is_file()
    assert all("cov" in r and "unstable" in r for r in report["rows"])


def test_latency_line_times_both_sides_from_a_decoded_image(trained_mnist, mnist_test):
    ckpt, onnx_path = trained_mnist["mnist_cnn"]
    line = compare_batch1(ckpt.model, ckpt.spec, onnx_path, mnist_test.images[0], duration_s=0.05)
    assert line.runtime.name == "runtime-ort-cpu" and line.torch_eager.name == "torch-eager"
    assert line.runtime.iterations >= 20 and line.torch_eager.iterations >= 20 and line.speedup > 0
    assert "latency mnist_cnn batch 1" in line.summary() and set(line.to_dict()) >= {"speedup", "runtime"}
