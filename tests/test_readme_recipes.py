"""The README teaches what works: its three recipes run here, on the tiny MNIST model, as written.

Each ``## Recipe: …`` section holds a ``bash`` block (the commands) and a ``text`` block (the expected output,
``…`` standing for what varies). Every ``edge`` and ``python3 -c`` line runs as a subprocess with ``asl_cnn``
read as ``mnist_cnn`` (the calibrated MNIST CNN of the test fixtures); after a comment that says "on the Jetson",
or in the on-device recipe, lines run in the device venv (torch-free, ``EDGE_DEVICE_PYTHON``). Lines whose comment
starts with ``GPU`` or ``camera`` are shown to users but skipped here, with that reason; ``pip`` and ``python3 -m
venv`` lines are skipped (the test venvs are those installs), and ``scp`` copies the archive it names into the
device folder. Every expected-output line must appear in what the executed commands printed.

Also: the README stays under 250 lines, and every relative link in the README and ``docs/`` resolves (file and,
for Markdown, heading anchor); no link leaves the repository.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

README = REPO / "README.md"
DEVICE_PYTHON = os.environ.get("EDGE_DEVICE_PYTHON")
NO_DEVICE_VENV = "no device-profile venv: `make test` builds it (`make device-venv`) and sets EDGE_DEVICE_PYTHON"
SKIPS = {
    "GPU": "needs a GPU and TensorRT to execute a plan: no machine of this project has one",
    "camera": "no camera here",
}
NOT_RUN = {
    "pip ": "the test venvs are this install (make install / make device-venv)",
    "python3 -m venv": "the device venv stands in for the Jetson's venv",
}
FRAMES = 30


@dataclass
class Recipe:
    title: str
    commands: list[str]
    expected: list[str]


def _blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", section, flags=re.M | re.S)


def read_recipes(text: str) -> dict[str, Recipe]:
    found = {}
    for title, section in re.findall(r"^## Recipe: (.+?)\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S):
        bash, expected = _blocks(section, "bash"), _blocks(section, "text")
        assert len(bash) == 1 and len(expected) == 1, f"recipe {title!r}: one bash and one text block"
        commands = [line for line in bash[0].splitlines() if line.strip()]
        found[title] = Recipe(title, commands, [line for line in expected[0].splitlines() if line.strip()])
    return found


RECIPES = read_recipes(README.read_text(encoding="utf-8"))


def test_the_readme_is_a_short_guide_with_three_recipes():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < 250, f"README.md has {len(lines)} lines; move details to docs/"
    assert set(RECIPES) == {"deploy ASL to a Jetson", "classify a camera or video", "FP16 vs INT8 on the device"}
    first = [line.split("#")[0].strip() for line in lines if line.startswith("make ")][:2]
    assert first == ["make demo", "make test"], first  # the README's first two commands
    for recipe in RECIPES.values():
        assert 4 <= len(recipe.commands) <= 13, (recipe.title, len(recipe.commands))


def _expected_pattern(line: str) -> re.Pattern:
    parts = [re.escape(part) for part in line.replace("asl_cnn", "mnist_cnn").split("…")]
    return re.compile(".*?".join(parts))


@dataclass
class Place:
    python: str
    cwd: Path


def _run(line: str, place: Place, log: list[str]) -> str | None:
    """Run one recipe line; return why it was skipped, or None when it ran (and passed)."""
    command, _, comment = line.partition("  #")
    command = command.strip().replace("asl_cnn", "mnist_cnn")
    for mark, reason in SKIPS.items():
        if comment.strip().startswith(mark):
            return reason
    for prefix, reason in NOT_RUN.items():
        if command.startswith(prefix):
            return reason
    argv = shlex.split(command)
    if argv[0] == "scp":  # the archive travels; the wheel is the device venv's own install
        for name in argv[1:-1]:
            if (place.cwd / name).is_file():
                log.append(f"(copied {name})")
        return "copy"
    assert argv[0] in ("edge", "python3"), f"a recipe line this test does not know how to run: {line}"
    argv = [place.python, "-m", "edge", *argv[1:]] if argv[0] == "edge" else [place.python, *argv[1:]]
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | {"PYTHONPATH": str(REPO)}
    done = subprocess.run(argv, cwd=place.cwd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, f"{command}\nrc {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    log.extend([done.stdout, done.stderr])
    if "--jsonl" in argv:  # what the user reads next: the per-frame lines in that file
        log.append((place.cwd / argv[argv.index("--jsonl") + 1]).read_text())
    return None


def _check_expected(recipe: Recipe, log: list[str]) -> None:
    text = "\n".join(log)
    for line in recipe.expected:
        if line.startswith("verdict: ") and re.search(r"^OK\s+gpu\s", text, flags=re.M):
            continue  # a machine with a GPU gets another verdict
        assert _expected_pattern(line).search(text), f"{recipe.title}: expected output line not seen: {line}\n{text}"


@pytest.fixture()
def training_side(calibrated_cnn, tmp_path) -> Path:
    """A training machine's working folder: artifacts/mnist_cnn as `edge calibrate` left it."""
    folder, _ = calibrated_cnn
    here = tmp_path / "training"
    shutil.copytree(folder, here / "artifacts" / "mnist_cnn")
    return here


def _device_python() -> str:
    if not DEVICE_PYTHON or not Path(DEVICE_PYTHON).is_file():
        pytest.skip(NO_DEVICE_VENV)
    return DEVICE_PYTHON


def _skip_note(skipped: list[tuple[str, str]]) -> None:
    for line, reason in skipped:  # shown with -rs / in the log: what the recipe has that this machine cannot run
        print(f"not run here ({reason}): {line}")


def test_recipe_deploy_to_a_jetson(training_side, tmp_path):
    recipe = RECIPES["deploy ASL to a Jetson"]
    device = tmp_path / "jetson"
    device.mkdir()
    place, log, skipped = Place(sys.executable, training_side), [], []
    for line in recipe.commands:
        if line.startswith("#"):
            if "on the Jetson" in line:
                place = Place(_device_python(), device)
            continue
        if line.startswith("scp "):
            shutil.copy(training_side / "bundles" / "mnist_cnn.bundle.tar.gz", device)
        reason = _run(line, place, log)
        if reason and reason != "copy":
            skipped.append((line, reason))
    assert (device / "mnist_cnn" / "mnist_cnn.int8.plan").is_file()
    assert {r for _, r in skipped} <= set(SKIPS.values()) | set(NOT_RUN.values())
    _check_expected(recipe, log)
    _skip_note(skipped)


def test_recipe_classify_a_video(training_side, mnist_test):
    from benchmarks.stream import write_video

    recipe = RECIPES["classify a camera or video"]
    write_video(training_side / "clip.mp4", mnist_test.images[:FRAMES], "libx264", (112, 112))
    place, log, skipped = Place(sys.executable, training_side), [], []
    for line in recipe.commands:
        if reason := _run(line, place, log):
            skipped.append((line, reason))
    assert (training_side / "clip.labels.mp4").stat().st_size > 0
    assert len((training_side / "clip.jsonl").read_text().splitlines()) == FRAMES
    assert sum(1 for _, r in skipped if r == SKIPS["camera"]) == 2
    _check_expected(recipe, log)
    _skip_note(skipped)


def test_recipe_fp16_vs_int8_on_the_device(calibrated_cnn, data_dir, tmp_path):
    from calibration.gate import run_gate
    from engine.bundle import create

    recipe = RECIPES["FP16 vs INT8 on the device"]
    folder = tmp_path / "artifacts" / "mnist_cnn"
    shutil.copytree(calibrated_cnn[0], folder)
    run_gate("mnist_cnn", folder, data_dir)  # what `edge calibrate` ends with: the report the bundle carries
    _, archive = create(folder, tmp_path / "bundles", log=lambda *_: None)
    device = tmp_path / "jetson"
    shutil.unpack_archive(archive, device)  # what `edge bundle unpack` leaves (the first recipe runs that)
    place, log, skipped = Place(_device_python(), device), [], []
    for line in recipe.commands:
        if reason := _run(line, place, log):
            skipped.append((line, reason))
    assert (device / "mnist_cnn" / "mnist_cnn.int8.ort.onnx.latency.json").is_file()
    _check_expected(recipe, log)
    _skip_note(skipped)


# --- links ---

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def _documents() -> list[Path]:
    return [README, REPO / "CHANGELOG.md", *sorted((REPO / "docs").rglob("*.md"))]


@pytest.mark.parametrize("document", _documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves_inside_the_repository(document):
    text = re.sub(r"^```.*?^```", "", document.read_text(encoding="utf-8"), flags=re.M | re.S)
    for match in LINK.finditer(text):
        target = match.group(1) or match.group(2)
        if re.match(r"^[a-z]+:", target):
            continue  # an absolute URL (none leave the repository for its own files)
        file, _, anchor = target.partition("#")
        path = (document.parent / file).resolve() if file else document
        assert path.exists(), f"{document.name}: link {target} → {path} does not exist"
        assert path == REPO.resolve() or REPO.resolve() in path.parents, f"{document.name}: {target} leaves the repo"
        if anchor and path.suffix == ".md":
            assert anchor in _anchors(path), f"{document.name}: {target}: no heading #{anchor} in {path.name}"


def test_the_slug_rule():
    assert _slug("Recipe: deploy ASL to a Jetson") == "recipe-deploy-asl-to-a-jetson"
    assert _slug("The `edge` command") == "the-edge-command"
    assert _slug("Dreaming: what a layer has learnt to see") == "dreaming-what-a-layer-has-learnt-to-see"
