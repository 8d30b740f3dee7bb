"""The CLI contract (issue 13), over every entry point as users run it (``python -m ...`` in a subprocess):
for each bad input — no traceback on stderr, exit status 1 or 2, an ``error:`` line naming the input, a valid
JSON document on stdout with ``--json`` (errors included, no NaN), and no file changed outside the output folder.

Entry points that import torch (export, train, calibration) start in seconds, so their rows run through
``tests/hardening/zygote.py`` (a forked child of a process that has imported torch, running the module with
``runpy`` exactly as ``python -m`` does); the others, and one export row, are plain ``python -m`` processes.

``CASES`` is also the second table of ``docs/BAD_INPUTS.md`` (``python -m tests.hardening.corpus``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.hardening.cli_cases import CASES, World, make_world


def strict_json(text: str):
    def refuse(constant):
        raise ValueError(f"invalid JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def snapshot(*roots: Path, skip: Path | None = None) -> dict[str, tuple[int, int]]:
    found = {}
    for root in roots:
        for path in root.rglob("*"):
            if skip is not None and (path == skip or skip in path.parents):
                continue
            stat = path.lstat()
            found[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return found


HEAVY = {"export", "train", "calibration"}


def _env(cwd: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "EDGE_DATA_DIR": str(cwd / "no-data")}


def run_cli(argv: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *argv], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=_env(cwd)
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return make_world(tmp_path_factory.mktemp("world"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli_contract(case, world, tmp_path, zygote):
    out = tmp_path / "out"
    argv = case.argv(world, out)
    before = snapshot(world.root, tmp_path, skip=out)
    if argv[0].split(".")[0] in HEAVY:
        result = zygote.run(argv, cwd=tmp_path, env=_env(tmp_path))
    else:
        result = run_cli(argv, cwd=tmp_path)
    assert "Traceback" not in result.stderr, result.stderr
    assert "unexpected" not in result.stderr, result.stderr  # the boundary's crash line: a bug, not a refusal
    assert result.returncode in (1, 2), (result.returncode, result.stderr)
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert errors, result.stderr
    assert case.names(world) in errors[-1], (case.names(world), errors)
    if "--json" in argv:
        doc = strict_json(result.stdout)
        assert isinstance(doc, dict), doc
    assert snapshot(world.root, tmp_path, skip=out) == before, "files outside the output folder changed"
    if case.check is not None:
        case.check(world, out)


def test_export_refuses_a_traversal_name_as_a_real_process(world, tmp_path):  # finding 2, no zygote
    before = snapshot(world.root, tmp_path)
    result = run_cli(
        ["export", "--checkpoint", str(world.checkpoints["traversal"]), "--out", str(tmp_path / "exp" / "sub")],
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr and "plain file name" in result.stderr
    assert snapshot(world.root, tmp_path) == before


def test_full_disk_during_export_is_one_line_and_leaves_no_partial_file(world, zygote, tmp_path):  # finding 15
    out = tmp_path / "exp"
    result = zygote.run(
        ["export", "--checkpoint", str(world.checkpoints["good"]), "--out", str(out)],
        cwd=tmp_path,
        env=_env(tmp_path),
        fsize=64 * 1024,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "File too large" in errors[0] and str(out) in errors[0], result.stderr
    assert sorted(p.name for p in out.iterdir()) == [] if out.exists() else True  # no .tmp, no truncated .onnx
    ok = zygote.run(
        ["export", "--checkpoint", str(world.checkpoints["good"]), "--out", str(out)], cwd=tmp_path, env=_env(tmp_path)
    )
    assert ok.returncode == 0, ok.stderr  # the same command works once there is room


# --- the boundary itself: an unexpected exception -------------------------------------------------------------

CRASH = """
import sys
from formats.cli import error_boundary

@error_boundary
def main(argv=None):
    1 / 0

sys.exit(main())
"""


def test_unexpected_exception_is_one_line_with_the_saved_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", CRASH, "--json"], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unexpected ZeroDivisionError" in lines[0] and "--debug" in lines[0], lines
    doc = strict_json(result.stdout)
    assert doc["ok"] is False and doc["error_type"] == "ZeroDivisionError"
    saved = Path(doc["traceback_file"])
    assert saved.parent == tmp_path and "ZeroDivisionError: division by zero" in saved.read_text()
    debug = subprocess.run(
        [sys.executable, "-c", CRASH, "--debug"], capture_output=True, text=True, env=env, timeout=60
    )
    assert debug.returncode == 2 and "Traceback (most recent call last)" in debug.stderr


def test_json_documents_never_hold_nan():
    from formats.cli import dumps

    text = dumps({"p": float("nan"), "q": [float("inf"), 1.5]})
    assert strict_json(text) == {"p": None, "q": [None, 1.5]}


WRITE_PLAN_FULL_DISK = """
import resource, sys
from pathlib import Path
import numpy as np
from engine.build import write_plan
from formats.engine_manifest import MANIFEST_FORMAT, EngineManifest
resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))
manifest = EngineManifest.from_dict(dict(plan_sha256="0" * 64, plan_bytes=1 << 20, source_onnx="m.onnx",
                                         source_sha256="0" * 64, flavour="tensorrt", trt_version="10.3.0",
                                         precision="fp32", quantization_path="fp32", profiles=[], build_flags={},
                                         spec={}, format=MANIFEST_FORMAT), "test manifest")
try:
    write_plan(Path(sys.argv[1]) / "m.plan", b"p" * (1 << 20), manifest,
               (np.zeros((2, 1, 28, 28)), np.zeros((2, 10))), None, None)
except OSError as exc:
    print(exc)
"""


def test_full_disk_while_writing_a_plan_leaves_no_orphan_golden_file(tmp_path):  # finding 15 (engine side)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", WRITE_PLAN_FULL_DISK, str(tmp_path)], capture_output=True, text=True, env=env, timeout=60
    )
    assert "File too large" in result.stdout and "m.plan" in result.stdout, result
    assert sorted(p.name for p in tmp_path.iterdir()) == []
