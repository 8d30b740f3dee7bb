"""The one exit-code table (``formats.cli.EXIT_CODES``), checked over every ``edge`` command as a process
(``python -m edge SUB ...``, through the zygote so the torch-importing ones start fast): an unknown option exits
``EXIT_USER_ERROR`` for every command (``--help`` exiting ``EXIT_OK`` is ``tests/edge/test_edge.py``'s); the rows of
``OUTCOMES`` reach the other codes with real inputs where that is cheap. The bad-input matrix itself is
``test_cli_contract.py``'s."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from edge.commands import COMMANDS
from formats.cli import EXIT_CHECK_FAILED, EXIT_OK, EXIT_SOME_INPUTS_BAD, EXIT_USER_ERROR
from tests.conftest import REPO, _data_dir
from tests.hardening.tiny_models import write_model


def _env(cwd: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "EDGE_DATA_DIR": str(cwd / "no-data")}


@pytest.mark.parametrize("command", [c.name for c in COMMANDS])
def test_an_unknown_option_is_a_usage_error(command, zygote, tmp_path):
    done = zygote.run(["edge", command, "--no-such-option"], cwd=tmp_path, env=_env(tmp_path))
    assert done.returncode == EXIT_USER_ERROR, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and "error:" in done.stderr


@dataclass(frozen=True)
class Outcome:
    id: str
    argv: Callable[[Path], list[str]]  # given a folder holding tiny.fp32.onnx (+ spec) and digit.png
    code: int


def _slow_baseline(folder: Path) -> Path:
    """A latency report whose medians no machine can beat: the run regresses against it."""
    row = {"batch": 1, "compute": {"median_ms": 1e-9}, "end_to_end": {"median_ms": 1e-9}}
    path = folder / "baseline.json"
    path.write_text(json.dumps({"results": [row]}))
    return path


OUTCOMES = (
    Outcome(
        "infer: every input good", lambda f: ["infer", "--engine", str(f / "tiny.fp32.onnx"), str(f / "d.png")], EXIT_OK
    ),
    Outcome(
        "infer: one input missing, the other classified",
        lambda f: ["infer", "--engine", str(f / "tiny.fp32.onnx"), str(f / "d.png"), str(f / "gone.png")],
        EXIT_SOME_INPUTS_BAD,
    ),
    Outcome(
        "infer: the model missing",
        lambda f: ["infer", "--engine", str(f / "gone.onnx"), str(f / "d.png")],
        EXIT_USER_ERROR,
    ),
    Outcome(
        "bench latency: a regression against the baseline",
        lambda f: [
            "bench",
            "latency",
            "--engine",
            str(f / "tiny.fp32.onnx"),
            "--batch",
            "1",
            "--warmup-ms",
            "5",
            "--duration-s",
            "0.05",
            "--out",
            str(f / "lat"),
            "--baseline",
            str(_slow_baseline(f)),
        ],  # fmt: skip
        EXIT_CHECK_FAILED,
    ),
    Outcome("data: MNIST already there", lambda f: ["data", "fetch-mnist", "--data-dir", str(_data_dir())], EXIT_OK),
    Outcome(
        "data: a copy source without MNIST",
        lambda f: ["data", "fetch-mnist", "--data-dir", str(f / "data"), "--from", str(f / "empty")],
        EXIT_USER_ERROR,
    ),
    Outcome("demo: an unknown model", lambda f: ["demo", "--models", "resnet9000"], EXIT_USER_ERROR),
)


@pytest.mark.parametrize("outcome", OUTCOMES, ids=[o.id for o in OUTCOMES])
def test_exit_code_table(outcome, zygote, tmp_path):
    write_model(tmp_path)
    Image.new("L", (28, 28), 128).save(tmp_path / "d.png")
    (tmp_path / "empty").mkdir()
    done = zygote.run(["edge", *outcome.argv(tmp_path)], cwd=tmp_path, env=_env(tmp_path))
    assert done.returncode == outcome.code, (done.returncode, done.stdout[-1000:], done.stderr[-2000:])
    assert "Traceback" not in done.stderr
