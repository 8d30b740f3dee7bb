import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytest.importorskip("av", reason="PyAV is installed by the stream extra (make install puts it in dev)")


def test_stream_benchmark_runs_as_a_program_and_writes_its_reports(trained_mnist, tmp_path):
    _, onnx_path = trained_mnist["mnist_cnn"]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "stream",
            "--engine",
            str(onnx_path),
            "--streams",
            "1,2",
            "--frames",
            "20",
            "--size",
            "160x120",
            "--out",
            str(tmp_path),
            "--json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report == json.loads((tmp_path / f"{onnx_path.name}.stream.json").read_text())
    one, two = report["results"]
    assert (one["streams"], one["classified"], two["streams"], two["classified"]) == (1, 20, 2, 40)
    assert one["vs_one_stream"] == 1.0 and two["vs_one_stream"] > 0
    assert set(one["stage_share"]) == {"decode", "preprocess", "inference", "sink"}
    assert abs(sum(one["stage_share"].values()) - 1.0) < 1e-3
    overhead = report["inference_overhead"]
    assert overhead["bare_session_run_ms"] > 0 and overhead["round_trip_ms"] > 0
    assert report["environment"]["cores"] >= 1 and report["rss"] is None
    assert (tmp_path / f"{onnx_path.name}.stream.csv").read_text().startswith("streams,frames,elapsed_s")
    assert (tmp_path / f"{onnx_path.name}.stream.png").stat().st_size > 0
