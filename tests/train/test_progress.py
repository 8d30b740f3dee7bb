"""Progress bars only on a terminal: ``python -m train`` with stderr redirected to a file (``make demo > log
2>&1``) writes the per-epoch lines and no ``\\r`` bar updates; the same run on a pseudo-terminal shows the bar."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
import termios
import threading

from tests.conftest import REPO


def _argv(data_dir, out) -> list[str]:
    return [
        sys.executable, "-m", "train", "mnist", "--model", "mnist_mlp", "--data-dir", str(data_dir),
        "--out", str(out), "--epochs", "1", "--limit", "600", "--batch-size", "64",
    ]  # fmt: skip


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_no_progress_updates_when_stderr_is_a_file(tmp_path, data_dir):
    log = tmp_path / "stderr.log"
    with log.open("wb") as err:
        done = subprocess.run(
            _argv(data_dir, tmp_path / "a"), stdout=subprocess.PIPE, stderr=err, env=_env(), timeout=300
        )
    text = log.read_bytes()
    assert done.returncode == 0, text[-2000:]
    assert b"\r" not in text and b"\r" not in done.stdout
    assert b"mnist_mlp epoch 1/1: loss" in text and b"mnist_mlp: test accuracy" in text  # the lines stay


def test_progress_bar_on_a_terminal(tmp_path, data_dir):
    """The control: the same run with stderr on a pseudo-terminal draws the bar (so the test above can fail)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # tqdm draws nothing 0 columns wide
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # the slave side closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        done = subprocess.run(
            _argv(data_dir, tmp_path / "b"), stdout=subprocess.DEVNULL, stderr=slave, env=_env(), timeout=300
        )
    finally:
        os.close(slave)
        reader.join(10)
        os.close(master)
    text = b"".join(chunks)
    assert done.returncode == 0, text[-2000:]
    assert b"\r" in text.replace(b"\r\n", b"") and b"mnist_mlp epoch 1/1:" in text, text[-2000:]
