"""``edge bench all`` (benchmarks.decide): the decision on constructed timings (pure functions), the noise rules it
shares with ``bench compare``, and the CLI on the tiny calibrated MNIST CNN in this (training) venv."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import compare
from benchmarks.decide import Measured, Report, Scored
from benchmarks.decide_report import decide, markdown
from benchmarks.noise import Spread, containment_error
from calibration.gate import holdout_sample
from calibration.statistics import binomial_cdf, mcnemar_exact
from formats.holdout import load_holdout, save_holdout
from tests.conftest import REPO


def _spread(name, median, jitter=0.0, rounds=3, calls=10, seed=0):
    rng = np.random.default_rng(seed)
    return Spread.of(name, [list(median * (1 + jitter * rng.standard_normal(calls))) for _ in range(rounds)])


def test_a_spread_past_bench_latencys_rule_is_unstable():
    assert not _spread("quiet", 1.0, jitter=0.001).unstable
    noisy = Spread.of("noisy", [[1.0, 1.0, 1.0, 9.0], [1.0, 12.0, 1.0, 1.0]])
    assert noisy.unstable and noisy.cov > 0.025 and noisy.to_dict()["unstable"] is True
    assert noisy.round_medians == (1.0, 1.0) and noisy.p10_ms == 1.0


def test_a_part_slower_than_its_whole_is_a_measurement_error_not_an_overhead():
    assert containment_error("bare", 1.0, "call", 2.0) is None
    assert "measurement error" in containment_error("bare", 10.19, "call", 4.25)
    # the demo's case: bare session.run 10.19 ms, the full runtime call 4.25 ms (old code: "overhead +4.6 %"…)
    rows = [
        compare.Row("ort-fp32", 1, 4.4, [4.4]),
        compare.Row(compare.BARE, 1, 10.19, [10.19], cov=0.4),
        compare.Row(compare.CALL, 1, 4.25, [4.25]),
    ]
    text = compare.markdown("m", rows)
    assert "overhead" not in text.split("WARNING")[0] and compare.overhead(rows) is None
    assert "measurement error" in text and "unstable" in text  # and the noisy row is flagged


def _report(int8_ms, fp32_ms=2.0, verdict="within budget"):
    report = Report("m", "f", data="mnist/test sample")
    budget = "accuracy drop ≤ 0.5 pp vs FP32"
    for precision, ms, v in (("fp32", fp32_ms, "reference"), ("int8", int8_ms, verdict)):
        name = f"{precision} ort-cpu"
        scored = Scored(0.99, (0.98, 0.995), 300, v, budget)
        report.rows[name] = {"precision": precision, "backend": "ort-cpu", "file": f"m.{precision}.onnx",
                             "size_mb": 1.0, "open_rss_mb": 1.0, "scored": scored}  # fmt: skip
        for batch in (1, 64):
            quiet = _spread(name, ms * batch, 0.001)
            report.measured.append(Measured(name, batch, quiet, _spread(name, 0.5 * ms * batch, 0.001)))
    return report


def test_int8_not_faster_is_said_and_not_recommended():
    decision = decide(_report(int8_ms=2.1))
    assert all(r["candidate"] == "fp32 ort-cpu" for r in decision.recommendations.values())
    assert len(decision.int8) == 2 and all("INT8 is not faster" in line for line in decision.int8)
    reason = decision.recommendations[64]["reason"]
    assert "accuracy drop ≤ 0.5 pp" in reason and "mnist/test sample" in reason  # the budget and the data, named
    assert decision.warnings == [] and "INT8 is not faster here: int8 ort-cpu" in markdown(_report(2.1), decision)


def test_faster_int8_within_budget_is_recommended_and_its_ratio_comes_from_the_rounds():
    decision = decide(_report(int8_ms=1.0))
    assert decision.recommendations[1]["candidate"] == "int8 ort-cpu" and decision.int8 == []
    assert decision.ratios["int8 vs fp32, ort-cpu, batch 64"]["median"] == pytest.approx(2.0, rel=0.01)
    inconclusive = decide(_report(int8_ms=1.0, verdict="inconclusive: split too small"))
    assert inconclusive.recommendations[1]["candidate"] == "fp32 ort-cpu"
    assert "its verdict is inconclusive" in inconclusive.recommendations[1]["reason"]
    assert "recommended at batch 64: fp32 ort-cpu" in markdown(_report(int8_ms=2.1), decide(_report(int8_ms=2.1)))


def test_exact_binomial_tails_match_scipy():
    from scipy.stats import binom, binomtest

    for n, k, p in ((8, 1, 0.5), (22, 6, 0.5), (1000, 990, 0.999), (100_000, 99_850, 0.999), (50, 49, 0.3)):
        assert binomial_cdf(k, n, p) == pytest.approx(binom.cdf(k, n, p), abs=1e-9)
    for b, c in ((16, 6), (0, 5), (3, 3), (40, 61)):
        assert mcnemar_exact(b, c) == pytest.approx(binomtest(b, b + c, 0.5).pvalue, abs=1e-9)


def test_holdout_sample_round_trips_with_its_source_and_budgets(data_dir, tmp_path):
    from train.cards import TEST, load_split
    from train.models.mnist import mnist_spec

    split = load_split(mnist_spec("mnist_cnn"), data_dir, TEST)
    save_holdout(tmp_path, "mnist_cnn", holdout_sample(split, 0.5))
    sample = load_holdout(tmp_path, "mnist_cnn")
    assert sample.images.shape == (300, 28, 28) and sample.info.source == "mnist/test"
    assert sample.info.drawn_from == 10_000 and sample.info.int8_max_drop == 0.005


def test_bench_all_cli_in_the_training_venv(calibrated_cnn, data_dir, tmp_path):
    import shutil

    from train.cards import TEST, load_split
    from train.models.mnist import mnist_spec

    folder = tmp_path / "mnist_cnn"  # a copy with the held-out sample the gate writes (the full split takes minutes)
    shutil.copytree(calibrated_cnn[0], folder)
    save_holdout(folder, "mnist_cnn", holdout_sample(load_split(mnist_spec("mnist_cnn"), data_dir, TEST), 0.5))
    env = {k: v for k, v in os.environ.items() if k != "EDGE_DATA_DIR"} | {"PYTHONPATH": str(REPO)}
    argv = ["all", str(folder), "--batch", "8", "--rounds", "2", "--iterations", "2", "--out", str(tmp_path), "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", *argv], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    files = {"fp32", "fp16", "int8", "int8.ort"}
    assert {(f"{p} ort-cpu", b) for p in files for b in (1, 8)} | {("fp32 pytorch-eager", 1)} <= {
        (m["candidate"], m["batch"]) for m in report["measured"]
    }
    assert "a seeded sample of 300 of 10,000 images shipped as mnist_cnn.holdout.npz" in report["accuracy_data"]
    assert report["candidates"]["int8 ort-cpu"]["accuracy"]["budget"] == "accuracy drop ≤ 0.5 pp vs FP32"
    assert all(m["end_to_end"]["cov"] >= 0 and "p10_ms" in m["compute"] for m in report["measured"])
    assert "budget" in report["recommendations"]["1"]["reason"] or report["recommendations"]["1"]["candidate"] is None
    assert {s["backend"] for s in report["skipped"]} >= {"tensorrt"}
    assert (tmp_path / "mnist_cnn.bench.png").is_file() and (tmp_path / "mnist_cnn.bench.csv").is_file()


def test_bench_all_refuses_a_folder_without_one_model_in_one_line(tmp_path, capsys):
    from benchmarks.bench_all import main

    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expected one <model>.fp32.onnx (what `edge export` writes), found none" in err
    assert main([str(tmp_path / "absent")]) == 2
    assert "not a folder; pass a model folder" in capsys.readouterr().err


def test_a_damaged_holdout_sample_is_named_with_the_fix(tmp_path):
    from formats.holdout import HoldoutError

    (tmp_path / "m.holdout.npz").write_bytes(b"not an npz")
    with pytest.raises(HoldoutError, match=r"m.holdout.npz: unreadable held-out sample .*edge gate --model m"):
        load_holdout(tmp_path, "m")
