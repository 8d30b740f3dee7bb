"""`make gpu-proof`'s CPU half (issue 24): the same command in --dry-run, on the CPU execution provider, writes the
report a GPU run writes — every model checked three ways against CPU FP32 (CUDA graphs: skipped with the reason),
stage tables at batch 1 and 64 — so the one call made on a lent GPU cannot rot between loans."""

import json
import os
import subprocess
import sys

from tests.conftest import REPO


def test_the_dry_run_writes_the_whole_report(trained_mnist, tmp_path):
    models = tmp_path / "models"  # one model keeps it quick; the GPU run takes every model folder
    models.mkdir()
    (models / "mnist_mlp").symlink_to(trained_mnist["mnist_mlp"][1].parent, target_is_directory=True)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_proof", "--dry-run", "--models", str(models), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((out / "gpu_proof.json").read_text())
    assert report["dry_run"] and "pytest -m gpu" in report["gpu_tests"]["command"]
    assert {row["model"] for row in report["models"]} == {"mnist_mlp.fp32.onnx"}
    for row in report["models"]:
        ways = row["ways"]
        assert "CUDA execution provider" in ways["cuda_graph"]["skipped"]
        for way in ("run", "io_binding"):
            assert "error" not in ways[way], ways[way]
            for batch in ("1", "64"):
                assert ways[way]["agreement"][batch]["top1_agreement"] == 1.0  # the CPU against itself
                stages = ways[way]["stages"][batch]["stages"]
                assert {"preprocess", "backend", "postprocess", "total"} <= set(stages)
        assert {"backend.h2d", "backend.run", "backend.d2h"} <= set(ways["io_binding"]["stages"]["64"]["stages"])
        assert ways["io_binding"]["stages"]["1"]["trtexec_equivalent"]["median_ms"] > 0
    assert report["failures"] == [] and report["environment"]["cores"] >= 1
    text = (out / "gpu_proof.md").read_text()
    assert "# GPU proof (dry run, CPU half)" in text and "every check that ran passed" in text
