"""torchrun with 2 processes on the CPU (gloo) must end where a single process ends."""

import json
import subprocess
import sys

import torch

from tests.conftest import REPO


def _train(args: list[str], out, data_dir, launcher: list[str]) -> subprocess.CompletedProcess:
    cmd = (
        launcher
        + [
            "-m",
            "train",
            "mnist",
            "--model",
            "mnist_mlp",
            "--data-dir",
            str(data_dir),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--limit",
            "3000",
            "--no-progress",
        ]
        + args
    )
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_two_process_ddp_matches_single_process(tmp_path, data_dir):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    two = _train([], tmp_path / "two", data_dir, torchrun)
    assert two.returncode == 0, two.stderr[-3000:]
    one = _train([], tmp_path / "one", data_dir, [sys.executable])
    assert one.returncode == 0, one.stderr[-3000:]
    # Rank 0 alone reports and writes.
    assert two.stderr.count("test accuracy") == 1
    a = torch.load(tmp_path / "one" / "mnist_mlp.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "two" / "mnist_mlp.pt", weights_only=True)["state_dict"]
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4
    m1 = json.loads((tmp_path / "one" / "mnist_mlp.metrics.json").read_text())
    m2 = json.loads((tmp_path / "two" / "mnist_mlp.metrics.json").read_text())
    assert abs(m1["test"]["accuracy"] - m2["test"]["accuracy"]) <= 0.002
    assert m1["history"][-1]["val_accuracy"] == m2["history"][-1]["val_accuracy"]


def test_a_batch_that_does_not_split_across_ranks_is_refused(tmp_path, data_dir):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    run = _train(["--batch-size", "127"], tmp_path, data_dir, torchrun)
    assert run.returncode != 0
    assert "batch size 127 must be divisible by the 2 processes" in run.stderr
