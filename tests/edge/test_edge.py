"""The ``edge`` command as users run it (a subprocess): the command list, every ``python -m`` entry point
reachable through it, each tool's own help, and the device profile (no torch) running ``edge infer``,
``edge doctor`` and ``edge build``."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.commands import BY_NAME, COMMANDS
from formats.cli import EXIT_CODES, EXIT_OK, EXIT_USER_ERROR
from tests.conftest import REPO

# `python -m benchmarks <sub>` modules: reached as `edge bench <sub>` (benchmarks/__main__.py dispatches them).
# `edge stream` went in issue 23: the stream benchmark is only `edge bench stream` (a video is `edge infer`).
BENCH_SUBCOMMANDS = {
    "benchmarks.latency",
    "benchmarks.compare",
    "benchmarks.ortgpu",
    "benchmarks.serving",
    "benchmarks.live_view",
    "benchmarks.stream",
    "benchmarks.power",
    "benchmarks.bench_all",
}
ALIASES = {"export.engine": "engine.__main__"}  # `python -m export.engine` is kept as an alias of `python -m engine`


def edge(*args: str, python: str = sys.executable, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | {"PYTHONPATH": str(REPO)}
    return subprocess.run(
        [python, "-m", "edge", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env
    )


def _entry_points() -> set[str]:
    """Every module of ours that runs under ``python -m`` (it has an ``if __name__ == "__main__":`` block)."""
    found = set()
    packages = ("formats", "runtime", "engine", "serving", "train", "export", "harness", "calibration")
    for package in (*packages, "benchmarks", "pipeline"):
        for path in (REPO / package).rglob("*.py"):
            if 'if __name__ == "__main__":' in path.read_text(encoding="utf-8"):
                found.add(".".join(path.relative_to(REPO).with_suffix("").parts))
    return found


def test_every_python_m_entry_point_is_an_edge_command():
    reachable = {c.module for c in COMMANDS} | BENCH_SUBCOMMANDS | set(ALIASES)
    missing = sorted(_entry_points() - reachable)
    assert missing == [], f"python -m entry points with no edge command: {missing}"
    bench = (REPO / "benchmarks" / "__main__.py").read_text()
    assert all(f"{m.split('.')[1]}.run" in bench for m in BENCH_SUBCOMMANDS)
    for command in COMMANDS:  # each module has the main(argv) the dispatcher calls
        tree = ast.parse((REPO / Path(*command.module.split("."))).with_suffix(".py").read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body), command.module


def test_console_script_is_declared_and_packaged():
    tomllib = pytest.importorskip("tomllib")  # Python ≥ 3.11
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["edge"] == "edge.__main__:main"
    assert "edge*" in project["tool"]["setuptools"]["packages"]["find"]["include"]


def test_help_lists_every_command_with_its_docstring_summary_and_the_exit_codes():
    done = edge("--help")
    assert done.returncode == EXIT_OK, done.stderr
    for command in COMMANDS:
        assert f"  {command.name:<13} {command.summary()}" in done.stdout
    assert BY_NAME["infer"].summary().startswith("Classify images with an exported model")
    for row in EXIT_CODES:
        assert f"{row.code:>3}  {row.meaning}" in done.stdout
    assert "1 means some inputs bad for: evaluate, infer, doggy-door, capture, client" in done.stdout


def test_each_command_help_is_the_tools_own_help():
    """``edge SUB --help`` prints the module's own argparse help (its ``prog`` names the ``edge`` form)."""
    code = (
        "import contextlib, io, json, sys\n"
        "from edge.__main__ import main\n"
        "from edge.commands import COMMANDS\n"
        "seen = {}\n"
        "for c in COMMANDS:\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        try:\n"
        "            rc = main([c.name, '--help'])\n"
        "        except SystemExit as exc:\n"
        "            rc = exc.code\n"
        "    seen[c.name] = [rc, out.getvalue()]\n"
        "print(json.dumps(seen))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    for name, (rc, text) in seen.items():
        assert rc == EXIT_OK and text.startswith(f"usage: edge {name} "), (name, rc, text[:200])
    assert "--engine" in seen["infer"][1] and "fetch-mnist" in seen["data"][1] and "latency" in seen["bench"][1]


def test_unknown_command_and_missing_command_are_usage_errors():
    for args in (("no-such-command",), ()):
        done = edge(*args)
        assert done.returncode == EXIT_USER_ERROR and "edge: error:" in done.stderr, done.stderr


DEVICE_PYTHON = os.environ.get("EDGE_DEVICE_PYTHON")
needs_device_venv = pytest.mark.skipif(
    not DEVICE_PYTHON or not Path(DEVICE_PYTHON).is_file(),
    reason="no device-profile venv: `make test` builds it (`make device-venv`) and sets EDGE_DEVICE_PYTHON",
)


@needs_device_venv
def test_device_profile_runs_infer_doctor_and_build_without_torch(tmp_path):
    from PIL import Image

    from tests.hardening.tiny_models import write_model

    model = write_model(tmp_path)
    digit = tmp_path / "digit.png"
    Image.new("L", (28, 28), 128).save(digit)
    assert "  infer " in edge("--help", python=DEVICE_PYTHON).stdout  # summaries read without importing torch
    done = edge("infer", "--engine", str(model), str(digit), "--json", python=DEVICE_PYTHON)
    assert done.returncode == EXIT_OK, done.stderr
    assert json.loads(done.stdout)["results"][0]["input"] == str(digit)
    done = edge("doctor", "--json", python=DEVICE_PYTHON)
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr
    assert {c["name"] for c in json.loads(done.stdout)} >= {"onnxruntime", "numpy"}
    done = edge("build", "--help", python=DEVICE_PYTHON)
    assert done.returncode == EXIT_OK and done.stdout.startswith("usage: edge build"), done.stderr
    # A training command on the device: one line naming what to install, no traceback.
    done = edge("train", "mnist", python=DEVICE_PYTHON)
    assert done.returncode == EXIT_USER_ERROR, done.stderr
    assert "Traceback" not in done.stderr and "edge train: cannot import " in done.stderr
    assert "pip install '.[train]'" in done.stderr


@needs_device_venv
def test_dream_on_the_device_names_the_extra_instead_of_crashing(tmp_path):  # issue 21, finding 19
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.new("RGB", (32, 32)).save(photo)
    done = edge(
        "dream", "--image", str(photo), "--layer", "block2", "--out", str(tmp_path / "d.png"), python=DEVICE_PYTHON
    )
    assert done.returncode == EXIT_USER_ERROR and "Traceback" not in done.stderr, done.stderr
    assert "unexpected" not in done.stderr, done.stderr  # was: unexpected ModuleNotFoundError: torch
    assert "this command needs torch, which is not installed here: pip install '.[train]'" in done.stderr
    done = edge("demo", "--help", python=DEVICE_PYTHON)
    assert done.returncode == EXIT_USER_ERROR and "pip install '.[" in done.stderr, done.stderr
