import json

from benchmarks import latency
from benchmarks.timing import stats_from_samples


def _stats(name, median, batch):
    return stats_from_samples(name, [median] * 5, batch)


def test_statistics_are_ordered_and_cov_is_std_over_mean():
    s = stats_from_samples("x", [1.0, 2.0, 3.0, 4.0, 100.0], 4)
    assert s.min_ms <= s.median_ms <= s.p90_ms <= s.p95_ms <= s.p99_ms <= s.max_ms == 100.0
    assert abs(s.cov - s.std_ms / s.mean_ms) < 1e-12 and s.cov > 1.0
    assert s.throughput == 1000.0 * 4 / 3.0


def test_knee_is_where_doubling_stops_paying():
    results = [
        latency.BatchResult(b, _stats("compute", ms, b), _stats("end_to_end", ms, b), {})
        for b, ms in ((1, 1.0), (2, 1.2), (4, 1.6), (8, 3.1), (16, 6.0))
    ]
    # throughput: 1000, 1667, 2500, 2580 (+3 %), 2667: the knee is 4
    assert latency.recommend_profile(results) == {
        "min": 1,
        "opt": 4,
        "max": 16,
        "rule": latency.recommend_profile(results)["rule"],
    }


def test_sweep_writes_every_format_and_flags_regressions(trained_mnist, tmp_path, capsys):
    _, onnx_path = trained_mnist["mnist_mlp"]
    args = [
        "latency",
        "--engine",
        str(onnx_path),
        "--batch",
        "1,4",
        "--duration-s",
        "0.05",
        "--warmup-ms",
        "10",
        "--out",
        str(tmp_path),
    ]
    from benchmarks.__main__ import main

    assert main(args) == 0

    def stem(ext):
        return tmp_path / f"{onnx_path.name}.latency{ext}"

    report = json.loads(stem(".json").read_text())
    row = report["results"][0]
    assert row["batch"] == 1 and set(row["stage_share"]) == set(latency.STAGES)
    assert abs(sum(row["stage_share"].values()) - 1.0) < 0.2  # medians of shares: close to a whole
    assert report["environment"]["cores"] >= 1 and report["recommended_profile"]["max"] == 4
    stages = row["stages"]  # the stage table: every stage of a plain CPU run, each with its spread
    assert list(stages) == ["decode", "preprocess", "backend.run", "backend", "postprocess", "total"]
    assert all(s["p10_ms"] <= s["median_ms"] <= s["p90_ms"] and s["iterations"] >= 10 for s in stages.values())
    assert row["trtexec_equivalent"] is None  # plain run: its copies cannot be told from its compute
    assert "backend.run |" in stem(".md").read_text()
    assert stem(".csv").read_text().startswith("batch,measure,median_ms")
    assert stem(".png").read_bytes()[:4] == b"\x89PNG"
    faster = json.loads(stem(".json").read_text())
    for r in faster["results"]:
        for key in ("compute", "end_to_end"):
            r[key]["median_ms"] /= 100.0  # a baseline 100× faster than anything real
    (tmp_path / "old.json").write_text(json.dumps(faster))
    assert main(args + ["--baseline", str(tmp_path / "old.json")]) == 1
    assert "REGRESSION batch 1 compute" in capsys.readouterr().err


def test_bad_batch_list_and_baseline_are_usage_errors(trained_mnist, tmp_path, capsys):
    _, onnx_path = trained_mnist["mnist_mlp"]
    assert latency.main(["--engine", str(onnx_path), "--batch", "0,x"]) == 2
    (tmp_path / "b.json").write_text("{not json")
    assert latency.main(["--engine", str(onnx_path), "--baseline", str(tmp_path / "b.json")]) == 2
    assert "cannot read it as a JSON report" in capsys.readouterr().err


def test_io_binding_splits_the_backend_stage_and_gives_a_compute_only_figure(trained_mnist, tmp_path):
    # The ONNX Runtime IOBinding path (the CUDA EP's, run here on the CPU EP): H2D / run / D2H and the
    # trtexec-equivalent figure (inputs already bound, no copies).
    from benchmarks.__main__ import main

    _, onnx_path = trained_mnist["mnist_mlp"]
    args = ["latency", "--engine", str(onnx_path), "--batch", "2", "--duration-s", "0.05", "--io-binding"]
    assert main(args + ["--warmup-ms", "10", "--out", str(tmp_path)]) == 0
    row = json.loads((tmp_path / f"{onnx_path.name}.latency.json").read_text())["results"][0]
    assert {"backend.h2d", "backend.run", "backend.d2h"} <= set(row["stages"])
    assert row["trtexec_equivalent"]["median_ms"] > 0
    assert "trtexec-equivalent (compute only, no copies)" in (tmp_path / f"{onnx_path.name}.latency.md").read_text()
