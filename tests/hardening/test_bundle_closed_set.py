"""Bundles are closed sets (issue 21, findings 3, 4, 5, 13, 14), through ``python -m engine.bundle`` as users run it:
``BUNDLE.json``'s list, ``SHA256SUMS`` and the archive's members are the same set, sizes are declared and checked
before extraction, staging is the unpack's own folder (never a user's), and a FIFO never hangs a command."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.hardening.tiny_models import write_model


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> tuple[Path, Path]:
    from engine.bundle import create

    root = tmp_path_factory.mktemp("bundle")
    return create(write_model(root / "tiny").parent, root / "out", model="tiny", log=lambda *_: None)


def cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env
    )


def refused(done: subprocess.CompletedProcess, *needles: str) -> str:
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and all(n in lines[0] for n in needles), done.stderr
    return lines[0]


def _copy(folder: Path, dest: Path) -> Path:
    dest.mkdir()
    for path in folder.iterdir():
        (dest / path.name).write_bytes(path.read_bytes())
    return dest


def _pack(folder: Path, archive: Path, top: str = "tiny", extra: dict[str, bytes] | None = None) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=f"{top}/{path.name}", recursive=False)
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def _reseal(folder: Path, files: dict[str, bytes]) -> None:
    """Rewrite BUNDLE.json and SHA256SUMS consistently for ``files`` (what a careful forger would do)."""
    index = json.loads((folder / "BUNDLE.json").read_text())
    index["files"] = {name: {"what": "x", "bytes": len(data)} for name, data in files.items()}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "BUNDLE.json").write_text(json.dumps(index))
    names = sorted([*files, "BUNDLE.json"])
    sums = "".join(f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n" for n in names)
    (folder / "SHA256SUMS").write_text(sums)


def test_a_line_dropped_from_sha256sums_and_its_file_swapped_is_refused(bundle, tmp_path):  # finding 3
    folder = _copy(bundle[0], tmp_path / "tiny")
    sums = (folder / "SHA256SUMS").read_text().splitlines(keepends=True)
    (folder / "SHA256SUMS").write_text("".join(line for line in sums if not line.endswith("tiny.fp32.onnx\n")))
    write_model(tmp_path / "other", name="tiny", nan=True)  # another model under the same name
    (folder / "tiny.fp32.onnx").write_bytes((tmp_path / "other" / "tiny.fp32.onnx").read_bytes())
    refused(cli("engine.bundle", "verify", str(folder), cwd=tmp_path), "BUNDLE.json lists tiny.fp32.onnx but")
    image = tmp_path / "digit.png"
    image.write_bytes(b"")
    done = cli("runtime.infer", "--engine", str(folder / "tiny.fp32.onnx"), str(image), cwd=tmp_path)
    refused(done, "BUNDLE.json lists tiny.fp32.onnx but SHA256SUMS does not")


def test_an_archive_with_an_empty_sha256sums_is_refused(bundle, tmp_path):  # finding 3
    folder = _copy(bundle[0], tmp_path / "tiny")
    (folder / "SHA256SUMS").write_text("")
    archive = _pack(folder, tmp_path / "empty.tar.gz")
    refused(cli("engine.bundle", "unpack", str(archive), "--out", str(tmp_path / "b"), cwd=tmp_path), "but SHA256SUMS")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.tar.gz", "tiny"]


def test_unlisted_or_oversized_members_are_refused_before_a_byte_is_written(bundle, tmp_path):  # finding 4
    folder = _copy(bundle[0], tmp_path / "tiny")
    bomb = _pack(folder, tmp_path / "bomb.tar.gz", extra={"zeros.bin": bytes(32 << 20)})
    assert bomb.stat().st_size < 1 << 20
    refused(
        cli("engine.bundle", "unpack", str(bomb), "--out", str(tmp_path / "b"), cwd=tmp_path),
        "holds zeros.bin, not listed in SHA256SUMS",
    )
    index = json.loads((folder / "BUNDLE.json").read_text())
    index["files"]["README.md"]["bytes"] = 10  # declared smaller than it is
    (folder / "BUNDLE.json").write_text(json.dumps(index))
    (folder / "SHA256SUMS").write_text(
        "".join(
            f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n"
            for n in sorted(p.name for p in folder.iterdir() if p.name != "SHA256SUMS")
        )
    )
    lying = _pack(folder, tmp_path / "lying.tar.gz")
    refused(
        cli("engine.bundle", "unpack", str(lying), "--out", str(tmp_path / "b"), cwd=tmp_path),
        "tiny/README.md holds",
        "BUNDLE.json declares 10",
    )
    assert not (tmp_path / "b").exists() and not list(tmp_path.glob(".b.*"))


def test_unpack_never_deletes_a_staging_like_folder_it_did_not_create(bundle, tmp_path):  # finding 5
    mine = tmp_path / ".b.unpacking"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    done = cli("engine.bundle", "unpack", str(bundle[1]), "--out", str(tmp_path / "b"), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (mine / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".b.unpacking", "b"]


@pytest.mark.slow  # packs and unpacks 128 MB to land the signal mid-unpack (~13 s on a loaded 2-core machine)
def test_sigterm_mid_unpack_leaves_no_staging(tmp_path):  # finding 5
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "BUNDLE.json").write_text(json.dumps({"format": "edge-toolkit-bundle/1", "model": "tiny", "files": {}}))
    _reseal(folder, {f"big{i}.bin": bytes(32 << 20) for i in range(4)})
    archive = _pack(folder, tmp_path / "big.tar.gz")
    for path in folder.iterdir():
        path.unlink()
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.bundle", "unpack", str(archive), "--out", str(tmp_path / "b")],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.stat().st_size for p in tmp_path.glob(".b.unpacking-*/*/*")):
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    process.wait(60)
    assert process.returncode != 0, "the unpack finished before the signal: the test proves nothing"
    assert "Traceback" not in process.stderr.read()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.tar.gz", "tiny"]


@pytest.mark.parametrize("name", ["archive", "BUNDLE.json", "SHA256SUMS"])
def test_a_fifo_in_place_of_a_bundle_file_is_refused_at_once(bundle, tmp_path, name):  # finding 13
    if name == "archive":
        fifo = tmp_path / "tiny.bundle.tar.gz"
        os.mkfifo(fifo)
        done = cli("engine.bundle", "unpack", str(fifo), "--out", str(tmp_path / "b"), cwd=tmp_path, timeout=30)
        refused(done, "tiny.bundle.tar.gz: is a FIFO")
        return
    folder = _copy(bundle[0], tmp_path / "tiny")
    (folder / name).unlink()
    os.mkfifo(folder / name)
    refused(cli("engine.bundle", "verify", str(folder), cwd=tmp_path, timeout=30), f"{name}: is a FIFO")


def test_terminal_escapes_in_a_name_are_shown_escaped(tmp_path):  # finding 16
    archive = tmp_path / "evil\x1b[2J\x07.tar.gz"
    done = cli("engine.bundle", "unpack", str(archive), "--out", str(tmp_path / "b"), cwd=tmp_path)
    assert done.returncode == 2 and "\x1b" not in done.stderr and "\x07" not in done.stderr, repr(done.stderr)
    assert "evil\\x1b[2J\\x07.tar.gz: no such file" in done.stderr, done.stderr
