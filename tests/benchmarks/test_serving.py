"""``python -m benchmarks triton``: the report's shape (tiny settings; no timed assertion)."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytest.importorskip("tritonclient.grpc", reason="tritonclient not installed: pip install '.[serve]'")
from serving.triton_install import ServeError, check_stub_site, find_triton, stub_site  # noqa: E402

try:
    find_triton()
    check_stub_site(stub_site())
except ServeError as exc:
    pytest.skip(f"no Triton server here: {exc}", allow_module_level=True)


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", "triton", *args], cwd=REPO, capture_output=True, text=True, timeout=180
    )


def test_load_benchmark_reports_both_setups_per_concurrency(trained_mnist, tmp_path):
    _, onnx_path = trained_mnist["mnist_cnn"]
    done = _bench(
        "--model",
        str(onnx_path),
        "--concurrency",
        "1,2",
        "--duration-s",
        "0.3",
        "--warmup-s",
        "0.1",
        "--threads",
        "1",
        "--rounds",
        "2",
        "--out",
        str(tmp_path),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report == json.loads((tmp_path / f"{onnx_path.name}.triton.json").read_text())
    assert [row["concurrency"] for row in report["results"]] == [1, 2]
    for row in report["results"]:
        for mode in ("in_process", "triton"):
            r = row[mode]
            assert r["requests"] > 0 and r["throughput"] > 0 and r["mode"] == mode
            assert (
                0 < r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"] and r["mean_batch"] >= 1.0 and r["cpu_ms_per_request"] > 0
            )
        assert row["throughput_ratio"] == pytest.approx(row["triton"]["throughput"] / row["in_process"]["throughput"])
    assert report["throughput_ratio_at_8"] is None and report["server_cpu_ratio_at_8"] is None  # 8 not measured
    assert all(row["server_cpu_ratio"] > 0 for row in report["results"])
    assert (
        report["environment"]["cores"] >= 1 and report["settings"]["threads"] == 1 and report["settings"]["rounds"] == 2
    )
    csv_lines = (tmp_path / f"{onnx_path.name}.triton.csv").read_text().splitlines()
    assert csv_lines[0].startswith("mode,concurrency,requests,throughput,p50_ms") and len(csv_lines) == 5
    assert (tmp_path / f"{onnx_path.name}.triton.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_arguments_are_usage_errors(trained_mnist, tmp_path):
    done = _bench("--model", str(trained_mnist["mnist_cnn"][1]), "--concurrency", "0,x")
    assert done.returncode == 2 and "--concurrency '0,x': expected integers from 1 to" in done.stderr
    done = _bench("--model", str(trained_mnist["mnist_cnn"][1]), "--images", str(tmp_path))
    assert done.returncode == 2 and f"--images {tmp_path}: expected a folder of image files" in done.stderr
