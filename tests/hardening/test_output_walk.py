"""Every output option of every CLI, read from the argparse parsers so a new option cannot escape (issue 21).

``test_every_path_option_is_classified`` captures each ``edge`` command's parser (``main`` is run until it calls
``parse_args``) and requires every path-valued option to be listed below as a file output, a folder output or an
input. ``test_file_output_against_nodes_inputs_and_foreign_files`` then runs each file output, as users run it
(``python -m ...``), against a character device (a ``/dev/null`` twin made with mknod inside tmp_path, never a
system path), a FIFO with a reader, an input file of the same run and a foreign file: the device and the FIFO are
written into and stay what they are, the input is refused even with ``--force``, the foreign file needs ``--force``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge.commands import COMMANDS
from tests.conftest import REPO
from tests.hardening.tiny_models import write_model

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00a holiday photo"
OUTPUT_WORDS = ("out", "log", "jsonl", "annotate", "keep", "report", "save", "cache", "repo")

# (command path, option): what it writes. A folder output is checked by its command's own tests (each file in it
# goes through the one writer); file outputs are walked below.
FILE_OUTPUTS = {
    ("infer", "--jsonl"),
    ("infer", "--annotate"),
    ("build", "--out"),
    ("build", "--timing-cache"),
    ("dream", "--out"),
    ("serve", "--log-file"),
    ("device-check", "--out"),
}
# file outputs the walk does not run, and why (each still writes through formats.writer)
NOT_WALKED = {
    ("device-check", "--out"): "runs the doctor and every model's latency sweep before it writes (Kind.REPORT)",
}
FOLDER_OUTPUTS = {
    ("train mnist", "--out"),
    ("train asl_effnet", "--out"),
    ("train asl_landmarks", "--out"),
    ("capture", "--out"),
    ("hands", "--out"),
    ("hands", "--download-dir"),
    ("train asl", "--out"),
    ("train transfer", "--out"),
    ("export", "--out"),
    ("robustness", "--keep"),
    ("bundle create", "--out"),
    ("bundle unpack", "--out"),
    ("triton", "--repo"),
    ("bench latency", "--out"),
    ("bench all", "--out"),
    ("bench ortgpu", "--out"),
    ("bench stream", "--out"),
    ("bench triton", "--out"),
    ("jpeg-draft", "--out"),
    ("demo", "--out"),
    ("evaluate", "--out"),
    ("paper", "--out"),
    ("gpu-proof", "--out"),
}
INPUTS = {
    ("capture", "--hand-models"),
    ("hands", "--wheel"),
    ("infer", "--fallback"),
    ("infer", "--hand-models"),
    ("train asl", "--adapt"),
    ("train asl", "--hands"),
    ("train asl", "--from"),
    ("train asl_landmarks", "--hands"),
    ("train asl_effnet", "--adapt"),
    ("train asl_effnet", "--from"),
    ("train asl_effnet", "--test-csv"),
    ("train asl_effnet", "--train-csv"),
    ("data fetch-mnist", "--from"),
    ("train asl", "--train-csv"),
    ("train asl", "--test-csv"),
    ("train transfer", "--data"),
    ("export", "--checkpoint"),
    ("calibrate", "--artifacts"),
    ("calibrate", "--folder"),
    ("gate", "--artifacts"),
    ("gate", "--folder"),
    ("robustness", "--model"),
    ("robustness", "--folder"),
    ("dream", "--image"),
    ("build", "--onnx"),
    ("build", "--calib-cache"),
    ("bundle create", "--artifacts"),
    ("bundle unpack", "archive"),
    ("bundle verify", "folder"),
    ("triton", "--model"),
    ("infer", "--engine"),
    ("doggy-door", "--engine"),
    ("doggy-door", "images"),
    ("serve", "--repo"),
    ("bench latency", "--engine"),
    ("bench latency", "--baseline"),
    ("bench compare", "--artifacts"),
    ("bench all", "folder"),
    ("bench ortgpu", "--engine"),
    ("bench stream", "--engine"),
    ("bench stream", "--images"),
    ("bench triton", "--model"),
    ("bench triton", "--images"),
    ("device-check", "--artifacts"),
    ("bench view", "--clip"),
    ("bench view", "--engine"),
    ("bench power", "--root"),  # a recorded sysfs tree to read instead of / (tests)
    ("client", "inputs"),
    ("evaluate", "--model"),
    ("evaluate", "--hand-models"),
    ("evaluate", "folder"),
    ("gpu-proof", "--models"),
}


class _Captured(BaseException):  # not an Exception: passes through every CLI's error boundary
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def captured_parser(module: str) -> argparse.ArgumentParser:
    """The parser ``module.main`` builds, taken at its ``parse_args`` call."""

    def capture(self, *args, **kwargs):
        raise _Captured(self)

    main = importlib.import_module(module).main
    original = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args
    argparse.ArgumentParser.parse_args = argparse.ArgumentParser.parse_known_args = capture
    try:
        main([])
    except _Captured as caught:
        return caught.parser
    finally:
        argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args = original
    raise AssertionError(f"{module}.main never called parse_args")


def path_options(parser: argparse.ArgumentParser, prefix: str) -> list[tuple[str, str]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += path_options(sub, f"{prefix} {name}")
            continue
        name = action.option_strings[-1] if action.option_strings else action.dest
        is_path = action.type is Path or (
            action.nargs != 0 and any(word in action.dest for word in OUTPUT_WORDS) and action.type is None
        )
        if is_path and action.dest not in ("data_dir",):
            found.append((prefix, name))
    return found


def test_every_path_option_is_classified():
    found = set()
    for command in COMMANDS:
        found |= set(path_options(captured_parser(command.module), command.name))
    tables = FILE_OUTPUTS | FOLDER_OUTPUTS | INPUTS
    unclassified = sorted(found - tables)
    assert not unclassified, f"classify these options in {__file__} (file output, folder output or input)"
    assert sorted(tables - found) == [], "options listed here that no parser has any more"
    assert not (FILE_OUTPUTS & INPUTS or FOLDER_OUTPUTS & INPUTS or FILE_OUTPUTS & FOLDER_OUTPUTS)
    assert set(RECIPES) | set(NOT_WALKED) == FILE_OUTPUTS, "give each file output a recipe (or a reason)"


# --- the walk of the file outputs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    suffix: str  # the output's usual suffix (the nodes and the foreign file carry it, so suffix checks pass)
    argv: Callable[[dict, Path], list[str]]  # (world, output path) -> argv after `python -m`
    input: Callable[[dict], Path]  # an input file of the same run


def _infer(w: dict) -> list[str]:
    return ["runtime.infer", "--engine", str(w["model"]), str(w["clip"]), "--max-frames", "2"]


RECIPES = {
    ("infer", "--jsonl"): Recipe(
        ".jsonl",
        lambda w, t: [*_infer(w), "--jsonl", str(t)],
        lambda w: w["model"],
    ),
    ("infer", "--annotate"): Recipe(
        ".mkv",
        lambda w, t: [*_infer(w), "--annotate", str(t)],
        lambda w: w["clip"],
    ),
    ("build", "--out"): Recipe(
        ".plan",
        lambda w, t: ["engine", "--onnx", str(w["model"]), "--out", str(t), "--max-batch", "2", "--opt-batch", "1"],
        lambda w: w["model"],
    ),
    ("build", "--timing-cache"): Recipe(
        ".cache",
        lambda w, t: [
            "engine", "--onnx", str(w["model"]), "--out", str(w["scratch"] / "m.plan"), "--max-batch", "2",
            "--opt-batch", "1", "--timing-cache", str(t),
        ],
        lambda w: w["model"],
    ),
    ("dream", "--out"): Recipe(
        ".png",
        lambda w, t: [
            "train.dream", "--image", str(w["photo"]), "--layer", "block2", "--steps", "1", "--octaves", "1",
            "--max-side", "64", "--out", str(t),
        ],
        lambda w: w["photo"],
    ),
    ("serve", "--log-file"): Recipe(
        ".log",
        lambda w, t: ["serving.serve", "--repo", str(w["scratch"] / "no_repo"), "--log-file", str(t)],
        lambda w: w["model"],
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    pytest.importorskip("av", reason="PyAV is not installed: pip install '.[stream]'")
    from benchmarks.stream import write_video

    root = tmp_path_factory.mktemp("walk")
    photo = root / "photo.png"
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))).convert("RGB").save(photo)
    (root / "scratch").mkdir()
    digits = [np.full((28, 28), 60 * i, np.uint8) for i in range(3)]
    return {
        "model": write_model(root / "m"),
        "clip": write_video(root / "clip.mp4", digits, "libx264", (32, 32)),
        "photo": photo,
        "scratch": root / "scratch",
    }


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def clean(done: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in done.stderr and "unexpected" not in done.stderr, done.stderr
    assert done.returncode in (0, 1, 2), (done.returncode, done.stderr)


def _drain(fifo: Path) -> threading.Thread:
    def read() -> None:
        with open(fifo, "rb") as fh:
            while fh.read(1 << 16):
                pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader


def _release(fifo: Path, reader: threading.Thread) -> None:
    """A run that never opened the FIFO leaves the reader waiting: open and close it for writing."""
    if reader.is_alive():
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    reader.join(timeout=10)


@pytest.mark.slow  # 24 real command runs (~3 min on a loaded 2-core machine)
@pytest.mark.parametrize("option", sorted(RECIPES), ids=[" ".join(o) for o in sorted(RECIPES)])
def test_file_output_against_nodes_inputs_and_foreign_files(world, tmp_path, option):
    recipe = RECIPES[option]
    device = tmp_path / f"null{recipe.suffix}"
    try:
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs root (CI and this machine run tests as root)")
    clean(run(recipe.argv(world, device), tmp_path))
    assert stat.S_ISCHR(os.stat(device).st_mode), "the device node was replaced"

    fifo = tmp_path / f"pipe{recipe.suffix}"
    os.mkfifo(fifo)
    reader = _drain(fifo)
    clean(run(recipe.argv(world, fifo), tmp_path))
    _release(fifo, reader)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode), "the FIFO was replaced"

    source = recipe.input(world)
    before = source.read_bytes()
    refused = run([*recipe.argv(world, source), "--force"], tmp_path)
    clean(refused)
    assert refused.returncode == 2 and source.read_bytes() == before, refused.stderr

    foreign = tmp_path / f"photo{recipe.suffix}"
    foreign.write_bytes(JPEG)
    refused = run(recipe.argv(world, foreign), tmp_path)
    clean(refused)
    assert refused.returncode == 2 and "--force" in refused.stderr and foreign.read_bytes() == JPEG, refused.stderr
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert leftovers == [], leftovers  # no temp file left beside any target


def test_every_seed_option_refuses_a_negative_seed():
    """--seed -1 is a usage error everywhere (issue 21, finding 22; edge paper escaped it: an unexpected
    ValueError), so every parser's --seed is walked, a new command's included."""
    seeds = []
    for command in COMMANDS:
        parser = captured_parser(command.module)
        seeds += [(command.name, a) for a in _all_actions(parser) if "--seed" in a.option_strings]
    assert len(seeds) >= 5, seeds
    for name, action in seeds:
        with pytest.raises(argparse.ArgumentTypeError):
            action.type("-1")
        assert action.type("7") == 7, name


def _all_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    actions = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                actions += _all_actions(sub)
        else:
            actions.append(action)
    return actions
