"""``python -m benchmarks ortgpu`` as a user runs it; on this CPU-only machine the GPU columns say why not."""

import json
import subprocess
import sys

import onnxruntime
import pytest

from benchmarks import ortgpu
from tests.conftest import REPO


@pytest.mark.skipif(
    "CUDAExecutionProvider" in onnxruntime.get_available_providers(),
    reason="with onnxruntime-gpu the default provider is cuda (benchmarks/gpu_ort_check.sh runs it)",
)
def test_cpu_run_measures_what_it_can_and_names_the_rest(trained_mnist, tmp_path):
    engine = trained_mnist["mnist_cnn"][1]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "ortgpu",
            "--engine",
            str(engine),
            "--batch",
            "1,4",
            "--duration-s",
            "0.02",
            "--warmup-ms",
            "5",
            "--rounds",
            "1",
            "--out",
            str(tmp_path),
            "--json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(done.stdout)
    assert report == json.loads((tmp_path / f"{engine.name}.ortgpu.json").read_text())
    assert (tmp_path / f"{engine.name}.ortgpu.md").read_text().startswith(f"`{engine.name}` on cpu")
    assert report["providers"] == ["cpu"] and report["environment"]["cores"] >= 1
    for row in report["results"]:
        assert set(row["median_ms"]) == {ortgpu.ORT_RUN, ortgpu.RUNTIME}
        assert all(ms > 0 for ms in row["median_ms"].values())
        assert "need the CUDA execution provider" in row["skipped"][ortgpu.RUNTIME_GRAPH]
        assert set(row["skipped"]) == {ortgpu.RUNTIME_GRAPH, ortgpu.FLOOR, ortgpu.TORCH}
        assert all(p["max_abs_diff"] == 0.0 and p["top1_agreement"] == 1.0 for p in row["parity_vs_cpu"].values())
    assert [t["target"].split()[0] for t in report["targets"]] == ["bs4"]  # only the regression check applies
    assert report["execution"][ortgpu.RUNTIME]["io_binding"] is False


def test_targets_are_ratios_of_the_same_run():
    rows = {
        1: {
            ortgpu.ORT_RUN: 0.34,
            ortgpu.RUNTIME: 0.2,
            ortgpu.RUNTIME_GRAPH: 0.12,
            ortgpu.FLOOR: 0.1,
            ortgpu.TORCH: 0.74,
        },
        64: {ortgpu.ORT_RUN: 14.9, ortgpu.RUNTIME: 10.0, ortgpu.RUNTIME_GRAPH: 16.0, ortgpu.FLOOR: 9.8},
    }
    found = {
        t["target"].split(" ")[0] + ("-torch" if "PyTorch" in t["target"] else ""): t for t in ortgpu.targets(rows)
    }
    assert found["bs1"]["met"] and abs(found["bs1"]["ratio"] - 1.2) < 1e-9
    assert found["bs1-torch"]["met"] and abs(found["bs1-torch"]["ratio"] - 0.74 / 0.12) < 1e-9
    slow = {1: {**rows[1], ortgpu.RUNTIME_GRAPH: 0.2}, 64: {**rows[64], ortgpu.RUNTIME: 16.0}}
    assert [t["met"] for t in ortgpu.targets(slow)] == [False, False, False]  # 2.0x floor, 3.7x torch, 1.07x run
    assert found["bs64"]["met"] and abs(found["bs64"]["ratio"] - 10.0 / 14.9) < 1e-9


@pytest.mark.skipif(
    "CUDAExecutionProvider" in onnxruntime.get_available_providers(), reason="this onnxruntime has the CUDA EP"
)
def test_a_missing_gpu_provider_is_a_usage_error(trained_mnist, capsys):
    engine = trained_mnist["mnist_cnn"][1]
    assert ortgpu.main(["--engine", str(engine), "--providers", "cuda"]) == 2
    assert "CUDAExecutionProvider is not available" in capsys.readouterr().err


@pytest.mark.skipif(
    "CUDAExecutionProvider" in onnxruntime.get_available_providers(), reason="this onnxruntime has the CUDA EP"
)
def test_latency_takes_the_same_providers_shorthand(trained_mnist, tmp_path):
    engine = trained_mnist["mnist_cnn"][1]
    base = [
        sys.executable,
        "-m",
        "benchmarks",
        "latency",
        "--engine",
        str(engine),
        "--batch",
        "2",
        "--duration-s",
        "0.02",
        "--warmup-ms",
        "5",
        "--out",
        str(tmp_path),
    ]
    done = subprocess.run(base + ["--providers", "cuda:0"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: --providers cuda:0: CUDAExecutionProvider is not available")
    done = subprocess.run(
        base + ["--providers", "cpu", "--io-binding", "--json"], cwd=REPO, capture_output=True, text=True, check=True
    )
    execution = json.loads(done.stdout)["execution"]
    assert execution["providers"] == ["CPUExecutionProvider"] and execution["io_binding"] is True
